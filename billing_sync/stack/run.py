"""`billing-sync run`: migrate, start the children, create keys, register the webhook, optionally
drive the demo, then serve until SIGINT or SIGTERM and stop every child."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .. import logs, schema
from ..config import ConfigError, Settings
from ..db import Database
from ..genesys.errors import GenesysError
from ..genesys.registration import register_playback_webhook
from ..keys import create_key
from ..models import StreamListener
from ..sandbox.control_client import SandboxControl
from .children import Child, Children
from .demo import Demo
from .environment import (
    DEMO_MEDIA_HOST, Addresses, addresses, check_production, configured_values, sandbox_overrides, uses_sandbox,
)
from .service_api import ServiceAPI, ServiceError
from .summary import read_summary

# The directory holding wsgi.py and gunicorn.conf.py (a clone, or an editable install of one).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STREAM_SHARD = "0/1"


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived: unwind whatever is in progress and stop the children."""


class RunFailed(Exception):
    """A step of start-up or the demo failed, or a child exited; the message says which."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    demo: bool = True
    bind: str | None = None
    sandbox_port: int = 0
    workers: int | None = None
    seed: int | None = None  # None: a new one each run, so ids never collide with an earlier run's
    instance_dir: Path = Path("instance")
    stop_timeout_s: float = 20.0


def run_stack(options: RunOptions, say: Callable[[str], None]) -> int:
    """Run the stack until a signal (exit status 0) or a failure (1). ConfigError before anything starts."""
    values = configured_values(os.environ)
    sandbox = uses_sandbox(values)
    where = addresses(options.bind, sandbox=sandbox, sandbox_port=options.sandbox_port, values=values)
    env = {**os.environ, **(sandbox_overrides(values, where) if sandbox else {}), "PYTHONUNBUFFERED": "1"}
    settings = Settings.from_env(env)
    if not sandbox:
        check_production(settings)
    for name in ("wsgi.py", "gunicorn.conf.py"):
        if not (PROJECT_ROOT / name).is_file():
            raise ConfigError(f"{name} not found in {PROJECT_ROOT}: run billing-sync from a clone of the project")
    # This process's own steps report in plain lines; its log would only repeat them.
    logs.configure_logging("WARNING")
    children = Children(options.instance_dir / "logs", env)
    stack = _Stack(options, settings, where, children, say, sandbox=sandbox)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.serve()
        return 0
    except StopRequested:
        say("stopping")
        return 0
    except RunFailed as error:
        say(f"error: {error}")
        return 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        statuses = children.stop(options.stop_timeout_s)
        if statuses:
            say("stopped: " + ", ".join(f"{name} (exit {code})" for name, code in statuses.items()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested()


class _Stack:
    def __init__(self, options: RunOptions, settings: Settings, where: Addresses, children: Children,
                 say: Callable[[str], None], *, sandbox: bool) -> None:
        self.options = options
        self.settings = settings
        self.where = where
        self.children = children
        self.say = say
        self.sandbox = sandbox

    def serve(self) -> None:
        db = Database.from_url(self.settings.database_url)
        try:
            self._start(db)
            self.say("serving until Ctrl-C (SIGINT) or SIGTERM")
            while True:
                self.guard()
                time.sleep(0.5)
        except (GenesysError, ValueError, ServiceError, httpx.HTTPError, SQLAlchemyError, ConfigError) as error:
            raise RunFailed(f"{type(error).__name__}: {error}") from None
        finally:
            db.dispose()

    def _start(self, db: Database) -> None:
        url = make_url(self.settings.database_url).render_as_string(hide_password=True)
        mode = f"sandbox org at {self.where.sandbox_url}" if self.sandbox else "production (GENESYS_* set: no sandbox)"
        self.say(f"mode: {mode}")
        schema.upgrade(db.engine)
        self.say(f"database: {url} (migrated to {schema.head_revision()})")
        self.say(f"logs: {self.children.log_dir}/")
        if self.sandbox:
            port = self.where.sandbox_url.rsplit(":", 1)[1]
            seed = secrets.randbelow(2**31) if self.options.seed is None else self.options.seed
            self.say(f"sandbox seed: {seed}")
            self._billing_sync("sandbox", "--port", port, "--seed", str(seed))
            self.wait_until(lambda: _answers(f"{self.where.sandbox_url}/sandbox/faults"), "the sandbox to answer")
        registered = register_playback_webhook(self.settings, db, actor="run")
        self.say(f"webhook {registered.name!r} delivers to {registered.address}")
        keys = self._create_keys(db) if self.sandbox else None
        stream = self._start_service()
        self.wait_until(lambda: _answers(f"{self.where.api_url}/readyz"), "the web server to be ready")
        self.wait_until(lambda: _listener_pid(db) == stream.pid, "the stream listener to start")
        self.say(f"api: {self.where.api_url}")
        if keys is None:
            self.say("api keys: create them with `billing-sync keys create --role admin|finance|viewer`")
        else:
            self.say(f"admin key: {keys['admin']}")
            self.say(f"finance key: {keys['finance']}")
        if self.options.demo and keys is not None:
            self._demo(db, keys)
        elif self.options.demo:
            self.say("demo skipped: it drives the sandbox org, and production mode has none")

    def _create_keys(self, db: Database) -> dict[str, str]:
        with db.write() as session:
            return {role: create_key(session, role=role, name=f"billing-sync run ({role})", actor="run")[1]
                    for role in ("admin", "finance")}

    def _start_service(self) -> Child:
        """Start web, dispatcher and stream listener; the stream listener's child."""
        web = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
               "--pythonpath", str(PROJECT_ROOT), "--bind", self.where.bind]
        if self.options.workers is not None:
            web += ["--workers", str(self.options.workers)]
        self.children.start("web", [*web, "wsgi:app"])
        self._billing_sync("dispatch")
        return self._billing_sync("stream", "--shard", STREAM_SHARD)

    def _billing_sync(self, command: str, *args: str) -> Child:
        return self.children.start(command, [sys.executable, "-m", "billing_sync", command, *args])

    def _demo(self, db: Database, keys: dict[str, str]) -> None:
        with ServiceAPI(self.where.api_url, admin_key=keys["admin"], finance_key=keys["finance"]) as api, \
                SandboxControl(self.where.sandbox_url) as control:
            demo = Demo(api, control, media_host=DEMO_MEDIA_HOST, export_dir=self.options.instance_dir / "exports",
                        say=self.say, guard=self.guard)
            result = demo.run()
        self.say("summary (the whole database):")
        for line in read_summary(db, result.run_id).lines():
            self.say(line)
        self.say(f"export: {result.export_path}")
        self.say(f"api: {self.where.api_url}")

    def guard(self) -> None:
        """RunFailed when a child has exited, with the end of its log."""
        child = self.children.first_exited()
        if child is not None:
            tail = "\n".join(f"  {line}" for line in child.log_tail())
            raise RunFailed(f"{child.name} exited with status {child.process.returncode}; "
                               f"the end of {child.log_path}:\n{tail}")

    def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not predicate():
            self.guard()
            if time.monotonic() > deadline:
                raise RunFailed(f"timed out waiting for {what}")
            time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _listener_pid(db: Database) -> int | None:
    with db.read() as session:
        return session.scalar(select(StreamListener.pid).where(StreamListener.shard == STREAM_SHARD))

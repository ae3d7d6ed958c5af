"""Real processes: gunicorn, the sandbox org and the `billing-sync` workers on loopback.

Ports are chosen safely: gunicorn is handed a socket the test already bound and listens
on (`fd://`), and the sandbox binds port 0 itself and names its URL on stdout.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import RATE_ENV, WEBHOOK_PASSWORD, WEBHOOK_USER

ROOT = Path(__file__).resolve().parents[2]
BILLING_SYNC = Path(sys.executable).with_name("billing-sync")


def gunicorn_command(*args: str) -> list[str]:
    """gunicorn with the project's config, run from a scratch directory (no stray .env)."""
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
            "--pythonpath", str(ROOT), *args, "wsgi:app"]


def listening_socket() -> socket.socket:
    """A loopback socket on a port the kernel picked, already listening: handed to a server
    process, no one can take the port between choosing it and serving on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BILLING_", "GENESYS_", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"))}
    env.update(
        DATABASE_URL=database_url,
        BILLING_SYNC_WEBHOOK_USERNAME=WEBHOOK_USER,
        BILLING_SYNC_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD,
        **RATE_ENV,
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


class Gunicorn:
    """gunicorn serving the app with `workers` workers, `env` added to the service's; its error
    log in `cwd`/gunicorn.log."""

    def __init__(self, database_url: str, cwd: Path, workers: int = 2, **env: str) -> None:
        self.log = cwd / "gunicorn.log"
        with listening_socket() as sock, open(self.log, "wb") as log:
            self.port = sock.getsockname()[1]
            self.process = subprocess.Popen(
                gunicorn_command("--workers", str(workers), "--bind", f"fd://{sock.fileno()}"),
                pass_fds=(sock.fileno(),), cwd=cwd, env=service_env(database_url, **env),
                stdout=subprocess.DEVNULL, stderr=log,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_ready()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("gunicorn did not become ready")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def kill_worker(self) -> int:
        """kill -9 one worker (not the master); its pid."""
        victim = self.workers()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen, timeout_s: float = 30) -> bool:
    """SIGTERM, then wait; kill outright what does not stop within `timeout_s` (False then)."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


@pytest.fixture
def gunicorn(database_url, tmp_path):
    server = Gunicorn(database_url, tmp_path)
    yield server
    server.stop()


class Worker:
    """A long-running `billing-sync` command run as a supervisor would: start, kill -9, restart, stop.

    Each start logs to its own file under `logs`, so a failure can show what the process said.
    """

    def __init__(self, name: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.cwd, self.env = name, args, cwd, env
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self) -> Worker:
        self.starts += 1
        self.log = self.cwd / f"{self.name}-{self.starts}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([str(BILLING_SYNC), *self.args], cwd=self.cwd, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> int:
        """kill -9, as a crash would; the pid killed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        return self.process.pid

    def restart(self) -> Worker:
        assert self.process.poll() is not None, f"{self.name} is still running"
        return self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait; the exit status (AssertionError if it had to be killed)."""
        if self.process is None:
            return 0
        assert terminate(self.process, timeout_s), \
            f"{self.name} did not stop within {timeout_s} s of SIGTERM:\n{self.output()[-2000:]}"
        return self.process.returncode


class SandboxProcess:
    """`billing-sync sandbox` in its own process on a port it picked; its URL read from what it prints."""

    def __init__(self, *, cwd: Path, env: dict[str, str], seed: int, time_scale: float = 1.0,
                 timeout_s: float = 30) -> None:
        self.log = cwd / "sandbox.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BILLING_SYNC), "sandbox", "--port", "0", "--seed", str(seed), "--time-scale", str(time_scale)],
                cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
            )
        self.base_url = self._announced_url(timeout_s)

    def _announced_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if match := re.search(r"org on (http://127\.0\.0\.1:\d+)", self.output()):
                return match.group(1)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the sandbox did not announce its URL:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait; the exit status."""
        terminate(self.process)
        return self.process.returncode

"""Real processes: gunicorn serving the app on a free loopback port."""

from __future__ import annotations

import os
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


def gunicorn_command(*args: str) -> list[str]:
    """gunicorn with the project's config, run from a scratch directory (no stray .env)."""
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
            "--pythonpath", str(ROOT), *args, "wsgi:app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    def __init__(self, database_url: str, cwd: Path, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            gunicorn_command("--workers", str(workers), "--bind", f"127.0.0.1:{self.port}"),
            cwd=cwd, env=env or service_env(database_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.process.stderr.read().decode()}")
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

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def gunicorn(database_url, tmp_path):
    server = Gunicorn(database_url, tmp_path)
    yield server
    server.stop()

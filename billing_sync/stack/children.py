"""Child processes of `billing-sync run`: started in their own process group, logged to a file,
stopped with SIGTERM, then SIGKILL for whatever is left of the group after a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

# How long SIGKILLed processes get to disappear (be reaped) before stop() moves on.
GROUP_GONE_S = 5.0


class Child:
    """One long-running command; its output goes to `<log_dir>/<name>.log`."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("ab") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()} {' '.join(self.argv)}\n".encode())
            log.flush()
            # A process group of its own: a terminal's Ctrl-C reaches `run` alone, which stops
            # the children in order, and SIGKILL to the group takes a child's own children too.
            self.process = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)

    def finish(self, deadline: float) -> int:
        """Wait for the child until `deadline` (monotonic), then SIGKILL its group; its exit status."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.process.wait()
        # A child that exited may leave its own children behind (a gunicorn worker): none survive.
        self._kill_group()
        return self.process.returncode

    def _kill_group(self) -> None:
        """SIGKILL whatever is left in the child's process group, and wait until it is gone."""
        deadline = time.monotonic() + GROUP_GONE_S
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
            while time.monotonic() < deadline:
                time.sleep(0.01)
                self.process.poll()  # reaps the leader itself; the rest are reaped by init
                os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


class Children:
    """The children of one run, stopped together: SIGTERM to all, then each until a shared deadline."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str]) -> Child:
        child = Child(name, argv, env=self.env, log_dir=self.log_dir)
        self.started.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.started if not child.running()), None)

    def stop(self, timeout_s: float) -> dict[str, int]:
        """Stop every child, the last started first to receive SIGTERM; exit status by name."""
        for child in reversed(self.started):
            child.terminate()
        deadline = time.monotonic() + timeout_s
        return {child.name: child.finish(deadline) for child in reversed(self.started)}

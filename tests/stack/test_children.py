"""Children of `billing-sync run` stop cleanly, and a child that ignores SIGTERM is killed with its own children."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from billing_sync.stack.children import Children

# Ignores SIGTERM, starts a grandchild that ignores it too, prints both pids, then waits forever.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
print(os.getpid(), grandchild.pid, flush=True)
time.sleep(3600)
"""
POLITE = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); print('up', flush=True); time.sleep(3600)"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for_line(path: Path, words: int) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line for line in path.read_text().splitlines() if not line.startswith("---")]
        if lines and len(lines[-1].split()) == words:
            return lines[-1].split()
        time.sleep(0.02)
    raise AssertionError(f"{path.name} never printed its line")


def test_sigterm_then_sigkill_leaves_nothing_behind(tmp_path):
    children = Children(tmp_path / "logs", dict(os.environ))
    stubborn = children.start("stubborn", [sys.executable, "-c", STUBBORN])
    polite = children.start("polite", [sys.executable, "-c", POLITE])
    pids = [int(pid) for pid in wait_for_line(stubborn.log_path, 2)]
    wait_for_line(polite.log_path, 1)
    assert all(alive(pid) for pid in pids)

    statuses = children.stop(timeout_s=0.5)

    assert statuses == {"polite": 0, "stubborn": -9}
    assert not any(alive(pid) for pid in [*pids, polite.pid])
    assert stubborn.log_path.read_text().startswith("--- ")
    assert children.first_exited() is stubborn

"""`billing-sync run` as a newcomer starts it: a subprocess that prints a summary the database
agrees with, serves the API at the printed URL with the printed keys, and leaves no process
behind on Ctrl-C or SIGTERM."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from billing_sync.genesys.client import GenesysClient
from billing_sync.models import BillingRecord, Discrepancy, OutboxMessage, Playback, PlaybackEvent
from billing_sync.sandbox.control_client import SandboxControl
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, running_sandbox

from ..genesys.sandbox_helpers import wait_until
from .conftest import free_port, service_env

pytestmark = pytest.mark.e2e
SERVING = "serving until Ctrl-C"
# A guard against a hung run, not a performance assertion.
STARTUP_LIMIT_S = 240
SUMMARY = ("ledger events", "playbacks", "charges", "adjustments", "deliveries", "discrepancies healed", "export",
           "api", "admin key", "finance key")


class RunProcess:
    """`billing-sync run` in `cwd`, its output read line by line as it comes."""

    def __init__(self, database_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "billing_sync", "run", "--workers", "2", *args],
            cwd=cwd, env=service_env(database_url, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail("billing-sync run exited early:\n" + "\n".join(self.output))
            self.output.append(line)
            if text in line:
                return
        pytest.fail(f"no {text!r} within {STARTUP_LIMIT_S} s:\n" + "\n".join(self.output))

    def printed(self) -> dict[str, str]:
        """The last value printed for each `name: value` line."""
        return {name: line.split(": ", 1)[1] for line in self.output for name in SUMMARY
                if line.startswith(f"{name}: ")}

    def tree(self) -> list[int]:
        """Every descendant process of the run, recursively."""
        found, pending = [], [self.process.pid]
        while pending:
            pid = pending.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                pending += children
        return found

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.finish()

    def finish(self) -> int:
        """Wait for the run to exit, with the rest of its output; its exit status."""
        try:
            status = self.process.wait(timeout=STARTUP_LIMIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._drain()
        return status

    def _drain(self) -> None:
        while (line := self._lines.get(timeout=10)) is not None:
            self.output.append(line)


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pids: list[int]) -> list[int]:
    """The pids still alive once every one is gone or a few seconds passed (init reaps orphans)."""
    deadline = time.monotonic() + 10
    while (left := [pid for pid in pids if not gone(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def run_process(database_url, tmp_path):
    started: list[RunProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunProcess:
        started.append(RunProcess(database_url, tmp_path, *args, env=env))
        return started[-1]

    yield start
    for run in started:
        if run.process.poll() is None:
            run.stop(signal.SIGTERM)


def count(db, model, *where) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def assert_summary_is_the_database(run: RunProcess, db, *, runs: int) -> dict[str, int]:
    """The printed numbers equal the database's; each demo adds its 8 playbacks, 7 of them charged."""
    printed = run.printed()
    assert set(printed) == set(SUMMARY), run.output
    numbers = {name: int(printed[name]) for name in SUMMARY[:6]}
    # Seven calls, eight playbacks (one by the DTMF rule), one of them failed: seven charges.
    assert numbers["playbacks"] == count(db, Playback) == 8 * runs
    assert numbers["ledger events"] == count(db, PlaybackEvent) > numbers["playbacks"] * 2
    assert numbers["charges"] == count(db, BillingRecord, BillingRecord.kind == "charge") == 7 * runs
    assert numbers["adjustments"] == count(db, BillingRecord, BillingRecord.kind == "adjustment")
    assert numbers["deliveries"] == count(db, OutboxMessage, OutboxMessage.status == "delivered") \
        == count(db, OutboxMessage)
    with db.read() as session:
        last_run = session.scalar(select(func.max(Discrepancy.run_id)))
        switched = session.scalar(select(func.count()).select_from(Playback).where(
            Playback.media_url.contains("/demo/agent.wav")))
    healed = count(db, Discrepancy, Discrepancy.run_id == last_run, Discrepancy.status == "healed")
    assert numbers["discrepancies healed"] == healed >= 1
    assert switched == runs
    return numbers


def test_the_demo_summary_is_what_the_database_holds_and_ctrl_c_stops_everything(run_process, db, tmp_path):
    run = run_process()
    run.wait_for(SERVING)
    numbers = assert_summary_is_the_database(run, db, runs=1)
    printed = run.printed()
    api = printed["api"]
    admin = {"Authorization": f"Bearer {printed['admin key']}"}
    finance = {"Authorization": f"Bearer {printed['finance key']}"}
    playbacks = httpx.get(f"{api}/api/v1/playbacks", headers=admin, timeout=10)
    assert playbacks.status_code == 200 and len(playbacks.json()["items"]) == 8
    charges = httpx.get(f"{api}/api/v1/billing/records", params={"kind": "charge"}, headers=finance, timeout=10)
    assert charges.status_code == 200 and len(charges.json()["items"]) == numbers["charges"]
    assert httpx.post(f"{api}/api/v1/switch-rules", json={}, headers=finance, timeout=10).status_code == 403
    export = Path(printed["export"])
    assert export.parent == tmp_path / "instance" / "exports"
    header, first = export.read_bytes().split(b"\r\n")[:2]
    assert header == b"id,created_at,actor,action,subject,details,prev_hash,hash"
    assert first.split(b",")[2:4] == [b"run", b"webhook.registered"]

    tree = run.tree()
    assert len(tree) >= 6  # sandbox, gunicorn and its 2 workers, dispatcher, stream listener
    assert run.stop(signal.SIGINT) == 0
    assert wait_gone(tree) == []
    assert any(line.startswith("stopped: ") for line in run.output)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/healthz", timeout=5)

    # scripts/run again: the same database, a new sandbox org, nothing of the first run mistaken for its own.
    again = run_process()
    again.wait_for(SERVING)
    assert_summary_is_the_database(again, db, runs=2)
    assert again.stop(signal.SIGINT) == 0


def test_no_demo_serves_without_traffic_until_sigterm(run_process, db):
    run = run_process("--no-demo")
    run.wait_for(SERVING)
    printed = run.printed()
    assert set(printed) == {"api", "admin key", "finance key"}, run.output
    api = printed["api"]
    assert httpx.get(f"{api}/readyz", timeout=10).status_code == 200
    answer = httpx.get(f"{api}/api/v1/playbacks", headers={"Authorization": f"Bearer {printed['admin key']}"},
                       timeout=10)
    assert answer.status_code == 200 and answer.json()["items"] == []
    assert count(db, PlaybackEvent) == count(db, BillingRecord) == 0

    tree = run.tree()
    assert run.stop(signal.SIGTERM) == 0
    assert wait_gone(tree) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/healthz", timeout=5)


def test_a_child_that_dies_stops_the_rest_and_fails_the_run(run_process):
    run = run_process("--no-demo")
    run.wait_for(SERVING)
    tree = run.tree()
    dispatcher = next(pid for pid in tree if b"dispatch" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(dispatcher, signal.SIGKILL)
    assert run.finish() == 1
    assert any(line.startswith("error: dispatch exited with status -9") for line in run.output), run.output
    assert wait_gone(tree) == []


def test_genesys_settings_make_it_production_mode_against_the_org_they_name(run_process, db):
    """An org the test runs stands in for a real one: `run` starts no sandbox of its own, makes no
    keys, drives no demo, and the org's webhooks and the billing system are the configured ones."""
    secret = "whsec_" + base64.b64encode(b"p" * 32).decode()
    with running_sandbox(billing_secrets=[secret]) as org:
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        run = run_process("--bind", f"127.0.0.1:{port}", env={
            "GENESYS_ENVIRONMENT": org.base_url, "GENESYS_CLIENT_ID": TEST_CLIENT_ID,
            "GENESYS_CLIENT_SECRET": TEST_CLIENT_SECRET, "BILLING_SYNC_PUBLIC_URL": public_url,
            "BILLING_WEBHOOK_URL": f"{org.base_url}/sandbox/billing", "BILLING_WEBHOOK_SECRET": secret,
        })
        run.wait_for(SERVING)
        assert run.printed() == {"api": public_url}, run.output
        assert any(line.startswith("mode: production") for line in run.output)
        assert any(line.startswith("demo skipped") for line in run.output)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in run.tree()]
        assert not any(b"sandbox" in command for command in commands)

        with GenesysClient(api_base=org.base_url, login_base=org.base_url, client_id=TEST_CLIENT_ID,
                           client_secret=TEST_CLIENT_SECRET) as genesys, SandboxControl(org.base_url) as control:
            (webhook,) = genesys.list_webhooks()
            assert webhook.address == f"{public_url}/webhooks/genesys"
            playback = genesys.start_playback(control.place_call(),
                                              "https://media.example.com/prod.wav?duration_ms=1500")
            wait_until(lambda: len(org.platform.billing.received()) == 1, timeout_s=60,
                       what="the charge to reach the configured billing system")
        (delivery,) = org.platform.billing.received()
        assert delivery["verified"] and delivery["payload"]["data"]["playback_id"] == playback.id
        assert count(db, BillingRecord) == 1
        assert run.stop(signal.SIGTERM) == 0

"""kill -9 of a real dispatcher mid-batch: nothing lost, re-sent with the same webhook-id."""

from __future__ import annotations

import signal
import time

from sqlalchemy import select

from billing_sync.models import OutboxMessage

from .conftest import charge, start_dispatcher

COUNT = 400


def test_kill_9_mid_batch_loses_nothing_and_resends_with_the_same_webhook_id(
        client, webhook_auth, events, db, sink, database_url, tmp_path):
    charge(client, webhook_auth, events, COUNT)
    with db.read() as session:
        keys = set(session.scalars(select(OutboxMessage.message_id)))
    # One batch holds every message, so no result is recorded before the whole batch is sent.
    lease = "2"
    process = start_dispatcher(database_url, sink.url, tmp_path, "--batch-size", str(COUNT),
                               "--concurrency", "2", "--lease-seconds", lease)
    try:
        while not (sent := len(sink.received())):
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    before = {r["webhook_id"] for r in sink.received()}
    assert 0 < sent <= len(before) < COUNT, "the kill did not land mid-batch"
    with db.read() as session:
        rows = list(session.scalars(select(OutboxMessage)))
    assert {m.status for m in rows} == {"pending"}  # the dead dispatcher recorded nothing
    if db.dialect == "postgresql":
        time.sleep(float(lease))  # its lease runs out; SQLite's next dispatcher reclaims at start
    rerun = start_dispatcher(database_url, sink.url, tmp_path, "--once")
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    received = sink.received()
    assert {r["webhook_id"] for r in received} == keys and len(received) == COUNT
    assert all(r["verified"] for r in received)
    resent = [r for r in received if r["webhook_id"] in before]
    assert resent and all(r["attempts"] >= 2 for r in resent)  # the same webhook-id, sent again
    with db.read() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {"delivered"}

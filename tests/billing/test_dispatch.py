"""Delivery through the outbox to the sandbox billing sink, over real HTTP."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_sync.billing import outbox
from billing_sync.billing.outbox import DispatcherBusy
from billing_sync.models import AuditEntry, OutboxMessage
from billing_sync.sandbox.testing import running_sandbox
from billing_sync.workers.dispatcher import DispatchStats

from .conftest import NEXT_SECRET, SECRET, Sink, charge, dispatcher, outbox_counts, run_until_settled, start_dispatcher


def messages(db) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def audit_entries(db, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_every_record_reaches_the_sink_signed_once_exactly_as_the_api_shows_it(
        client, webhook_auth, events, db, settings, sink, api_key):
    charge(client, webhook_auth, events, 120)
    stats = dispatcher(db, settings, sink).run(threading.Event(), once=True)
    assert stats.delivered == 120 and stats.batches >= 3
    received = sink.received()
    assert all(r["verified"] and r["attempts"] == 1 for r in received)
    records = client.get("/api/v1/billing/records?limit=500", headers=api_key("finance")).get_json()["items"]
    assert {r["webhook_id"] for r in received} == {m.message_id for m in messages(db)}
    assert sorted((r["payload"]["data"] for r in received), key=lambda d: d["id"]) == records
    assert {r["payload"]["type"] for r in received} == {"billing.record.created"}
    assert all(r["payload"]["timestamp"] == r["payload"]["data"]["created_at"] for r in received)
    assert all(m.status == "delivered" and m.delivered_at and m.attempts == 1 and m.lease_owner is None
               for m in messages(db))
    delivered = [record_id for entry in audit_entries(db, "billing.delivered") for record_id in entry.details["record_ids"]]
    assert sorted(delivered) == sorted(r["id"] for r in records)


def test_rotation_signs_with_both_secrets_and_either_receiver_verifies(client, webhook_auth, events, db, settings):
    rotating = settings.replace(billing_webhook_secret=(SECRET, NEXT_SECRET))
    charge(client, webhook_auth, events, 3)
    with running_sandbox(billing_secrets=(NEXT_SECRET,)) as new_only:
        dispatcher(db, rotating, Sink(new_only.base_url)).run(threading.Event(), once=True)
        received = Sink(new_only.base_url).received()
    assert len(received) == 3 and all(r["verified"] for r in received)


def test_a_sink_that_fails_for_a_while_then_recovers_gets_every_record_once(
        client, webhook_auth, events, db, settings, sink):
    keys = charge(client, webhook_auth, events, 60)
    sink.fail(500, for_s=0.5)
    run_until_settled(dispatcher(db, settings, sink, concurrency=4, batch_size=20), db)
    received = sink.received()
    assert len(received) == len(keys) == len({r["webhook_id"] for r in received})
    assert all(r["verified"] for r in received)
    assert any(r["attempts"] > 1 for r in received)  # retried with the same webhook-id
    rows = messages(db)
    assert {m.status for m in rows} == {"delivered"} and any(m.attempts > 1 for m in rows)
    assert {r["webhook_id"] for r in received} == {m.message_id for m in rows}


def test_503_with_retry_after_waits_then_delivers(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 2)
    sink.fail(503, for_s=0.3)
    run_until_settled(dispatcher(db, settings, sink), db)
    rows = messages(db)
    assert {m.status for m in rows} == {"delivered"}
    assert all(m.attempts == 2 for m in rows)  # Retry-After: 1 outlasts the 50 ms schedule and the outage


def test_410_is_dead_at_once_and_a_replay_delivers_it(client, webhook_auth, events, db, settings, sink, api_key):
    charge(client, webhook_auth, events, 3)
    sink.fail(410)
    dispatcher(db, settings, sink).run(threading.Event(), once=True)
    rows = messages(db)
    assert [(m.status, m.attempts, m.last_status) for m in rows] == [("dead", 1, 410)] * 3
    assert len(audit_entries(db, "billing.dead")) == 3
    sink.fail(None)
    admin = api_key("admin")
    answer = client.post(f"/api/v1/billing/outbox/{rows[0].id}/replay", headers=admin)
    assert answer.status_code == 200 and answer.get_json()["status"] == "pending"
    assert client.post(f"/api/v1/billing/outbox/{rows[0].id}/replay", headers=admin).status_code == 409
    assert client.post("/api/v1/billing/outbox/999999/replay", headers=admin).status_code == 404
    assert client.post(f"/api/v1/billing/outbox/{rows[1].id}/replay", headers=api_key("finance")).status_code == 403
    dispatcher(db, settings, sink).run(threading.Event(), once=True)
    assert [m.status for m in messages(db)] == ["delivered", "dead", "dead"]
    with db.transaction() as connection:
        replayed = outbox.replay_dead(connection, actor="test", since=datetime.now(UTC) - timedelta(hours=1))
    assert replayed == [rows[1].id, rows[2].id]
    dispatcher(db, settings, sink).run(threading.Event(), once=True)
    assert [m.status for m in messages(db)] == ["delivered"] * 3
    replays = audit_entries(db, "billing.replayed")
    assert [e.details["outbox_id"] for e in replays] == [rows[0].id, rows[1].id, rows[2].id]
    assert replays[0].actor.startswith("api_key:") and replays[1].actor == "test"
    assert all(e.details["last_status"] == 410 for e in replays)
    # The first was delivered alone; the other two concurrently, in either order.
    received = [r["webhook_id"] for r in sink.received()]
    assert received[0] == rows[0].message_id and sorted(received[1:]) == sorted(m.message_id for m in rows[1:])


def test_the_schedule_runs_out_and_the_message_is_dead(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 1)
    sink.fail(500)
    short = settings.replace(billing_retry_schedule=(0, 0.01, 0.01))
    run_until_settled(dispatcher(db, short, sink), db)
    [row] = messages(db)
    assert (row.status, row.attempts, row.last_status, row.last_error) == ("dead", 3, 500, "HTTP 500")


def test_an_unreachable_billing_system_is_retried_not_lost(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 2)
    nowhere = Sink("http://127.0.0.1:9")  # the discard port: connection refused
    stats = DispatchStats()
    assert dispatcher(db, settings, nowhere).dispatch_batch(threading.Event(), stats)
    rows = messages(db)
    assert stats.retry == 2 and all(m.status == "pending" and m.attempts == 1 and m.last_status is None
                                     and "ConnectError" in m.last_error for m in rows)
    run_until_settled(dispatcher(db, settings, sink), db)
    assert len(sink.received()) == 2


def test_stop_finishes_in_flight_and_releases_the_rest(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 40)
    stop = threading.Event()
    dispatch = dispatcher(db, settings, sink, concurrency=1, batch_size=40)
    real_attempt = dispatch._deliverer.attempt

    def attempt_then_stop(message):
        result = real_attempt(message)
        stop.set()  # as SIGTERM would, in the middle of the batch
        return result

    dispatch._deliverer.attempt = attempt_then_stop
    stats = dispatch.run(stop)
    rows = messages(db)
    delivered = [m for m in rows if m.status == "delivered"]
    assert stats.delivered == len(delivered) >= 1 and stats.released == 40 - len(delivered) > 0
    assert all(m.lease_owner is None and m.leased_until is None for m in rows)
    assert len(sink.received()) == len(delivered)


def test_sigterm_ends_a_real_dispatcher_with_exit_0(client, webhook_auth, events, db, settings, sink,
                                                    database_url, tmp_path):
    charge(client, webhook_auth, events, 5)
    process = start_dispatcher(database_url, sink.url, tmp_path, "--poll-interval", "0.05")
    try:
        while outbox_counts(db).get("pending", 0):
            assert process.poll() is None, process.stderr.read()
            threading.Event().wait(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "5 delivered" in stderr
    assert all(m.lease_owner is None for m in messages(db))


def test_sqlite_allows_one_dispatcher_at_a_time(db, settings, sink):
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL dispatchers share the outbox")
    with outbox.exclusive_dispatcher(db.engine):
        with pytest.raises(DispatcherBusy, match="another dispatcher"):
            dispatcher(db, settings, sink).run(threading.Event(), once=True)
    dispatcher(db, settings, sink).run(threading.Event(), once=True)


def test_postgresql_dispatchers_share_the_work_without_sending_twice(client, webhook_auth, events, db, settings, sink):
    if db.dialect != "postgresql":
        pytest.skip("SQLite runs one dispatcher at a time")
    charge(client, webhook_auth, events, 300)
    stop = threading.Event()
    workers = [dispatcher(db, settings, sink, concurrency=4, batch_size=10) for _ in range(3)]
    stats = [None] * 3
    threads = [threading.Thread(target=lambda i=i: stats.__setitem__(i, workers[i].run(stop, once=True)))
               for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = sink.received()
    assert len(received) == 300 and all(r["attempts"] == 1 for r in received)
    assert sum(s.delivered for s in stats) == 300 and sum(1 for s in stats if s.delivered) >= 2

"""Charges written by ingest: one per playback, in the event's transaction, never updated."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DatabaseError, IntegrityError

from billing_sync.genesys.payloads import parse_deliveries
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.rating import Tariff
from billing_sync.audit import verify_chain
from billing_sync.ledger.records import (
    Correction, CorrectionError, adjust, adjust_many, record_json, reverse, webhook_body, webhook_body_around_id,
)
from billing_sync.models import AuditEntry, BillingRecord, OutboxMessage

TARIFF = Tariff(Decimal("0.60"), "USD")


def post(client, body, headers):
    response = client.post("/webhooks/genesys", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def records(db) -> list[BillingRecord]:
    with db.read() as session:
        return list(session.scalars(select(BillingRecord).order_by(BillingRecord.id)))


def outbox(db) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def audit_actions(db) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_completed_playback_is_charged_once_with_its_outbox_row_and_audit_entry(client, webhook_auth, events, db):
    lifecycle = events.lifecycle(duration=12_345, conversation_id="conv-9")
    post(client, lifecycle, webhook_auth)
    [record] = records(db)
    assert record_json(record) == {
        "id": record.id, "kind": "charge", "playback_id": lifecycle[0]["playbackId"],
        "conversation_id": "conv-9", "duration_ms": 12_345, "billable_seconds": 13,
        "rate_per_minute": "0.60", "amount_minor": 13, "currency": "USD", "provenance": "webhook",
        "corrects": None, "created_at": record.created_at.isoformat(),
    }
    assert record.idempotency_key == f"charge:{lifecycle[0]['playbackId']}:terminal"
    [message] = outbox(db)
    assert (message.record_id, message.message_id, message.status, message.attempts) == (
        record.id, record.idempotency_key, "pending", 0)
    assert json.loads(message.payload) == {"type": "billing.record.created",
                                           "timestamp": record.created_at.isoformat(), "data": record_json(record)}
    assert audit_actions(db) == ["billing.charge.created"]


@pytest.mark.parametrize("split", [False, True], ids=["new playback", "known playback"])
def test_the_outbox_body_is_the_records_webhook_body_and_the_chain_verifies(client, webhook_auth, events, db, split):
    lifecycle = events.lifecycle(playback_id="playback-é-1", duration=7_500)
    for part in ([lifecycle[:2], lifecycle[2:]] if split else [lifecycle]):
        post(client, part, webhook_auth)
    [record] = records(db)
    [message] = outbox(db)
    assert message.payload == webhook_body(record_json(record))
    with db.read() as session:
        report = verify_chain(session)
    assert report.ok and report.verified == 1


def test_a_conflict_and_a_charge_in_one_request_are_chained_in_order(client, webhook_auth, events, db):
    lifecycle = events.lifecycle(duration=5_000)
    post(client, lifecycle[:2], webhook_auth)
    conflicting = events.event(playback_id=lifecycle[0]["playbackId"], state="stopped", sequence=4, duration=4_000)
    post(client, [lifecycle[2], conflicting], webhook_auth)
    assert audit_actions(db) == ["playback.terminal_conflict", "billing.charge.created"]
    with db.read() as session:
        report = verify_chain(session)
    assert report.ok and report.verified == 2


_CHARGE_ROW = {"idempotency_key": 'charge:p-"é"-{id}:terminal', "kind": "charge", "playback_id": 'p-"é"-{id}',
               "conversation_id": "c-1", "cause": "terminal", "duration_ms": 1, "billable_seconds": 1,
               "rate_per_minute": "0.60", "amount_minor": 1, "currency": "EUR", "provenance": "webhook",
               "corrects": None, "ended_at": None,
               "created_at": datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC)}
_ADJUSTMENT_ROW = _CHARGE_ROW | {
    "idempotency_key": "adjustment:p\\☕\u2028\x01:recon-7", "kind": "adjustment", "playback_id": "p\\☕\u2028\x01",
    "conversation_id": "c-\t😀", "duration_ms": -1500, "billable_seconds": -2, "amount_minor": -10**15,
    "rate_per_minute": "12.3456", "currency": "JPY", "provenance": "reconciliation", "corrects": 10**12,
    "created_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))}


@pytest.mark.parametrize("record_id", [1, 42, 10**12])
@pytest.mark.parametrize("row", [_CHARGE_ROW, _ADJUSTMENT_ROW], ids=["charge", "adjustment"])
def test_a_body_split_around_its_id_is_the_body(record_id, row):
    head, tail = webhook_body_around_id(row)
    assert head + str(record_id) + tail == webhook_body(record_json(SimpleNamespace(id=record_id, **row)))


@pytest.mark.parametrize("terminal", ["completed", "stopped"])
def test_completed_and_stopped_are_charged(client, webhook_auth, events, db, terminal):
    post(client, events.lifecycle(terminal=terminal, duration=60_000), webhook_auth)
    assert [(r.kind, r.amount_minor) for r in records(db)] == [("charge", 60)]


def test_failed_is_recorded_not_charged(client, webhook_auth, events, db):
    post(client, events.lifecycle(terminal="failed", duration=0), webhook_auth)
    assert records(db) == [] and outbox(db) == []


def test_duplicate_and_reordered_terminal_events_charge_once(client, webhook_auth, events, db):
    started, progress, completed = events.lifecycle(duration=9_000)
    twin = dict(completed, id="redelivered-under-another-id")
    post(client, [completed], webhook_auth)                 # terminal first
    post(client, [completed, started], webhook_auth)       # again, with a late start
    post(client, events.notification(twin), webhook_auth)  # the same end through another shape
    post(client, [progress, completed, twin], webhook_auth)
    assert [(r.kind, r.duration_ms) for r in records(db)] == [("charge", 9_000)]
    assert len(outbox(db)) == 1 and audit_actions(db) == ["billing.charge.created"]


def test_a_batch_charges_every_playback_that_ended_in_it(client, webhook_auth, events, db):
    batch = [e for n in range(40) for e in events.lifecycle(duration=1000 * (n + 1))]
    batch += events.lifecycle(terminal="failed")
    post(client, batch, webhook_auth)
    post(client, batch, webhook_auth)
    charged = records(db)
    assert sorted(r.duration_ms for r in charged) == [1000 * (n + 1) for n in range(40)]
    assert sum(r.amount_minor for r in charged) == sum(n + 1 for n in range(40))  # 1 cent a second
    assert len(outbox(db)) == 40 and audit_actions(db).count("billing.charge.created") == 40


def test_other_sources_do_not_charge(db, events):
    received = parse_deliveries(events.lifecycle())
    with db.transaction() as connection:
        result = record_events(connection, received, source="stream", tariff=TARIFF)
    assert len(result.ended) == 1 and result.charged == [] and records(db) == []


def test_without_a_tariff_nothing_is_charged(db, events):
    with db.transaction() as connection:
        result = record_events(connection, parse_deliveries(events.lifecycle()), source="webhook")
    assert result.ended[0].state == "completed" and records(db) == []


def test_concurrent_requests_for_one_playback_charge_once(db, events):
    """Two transactions race: each carries a different terminal delivery of the same playback."""
    started, _, completed = events.lifecycle(duration=30_000)
    twin = dict(completed, id="the-same-end-another-id")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def ingest(body):
        try:
            barrier.wait()
            with db.transaction() as connection:
                results.append(record_events(connection, parse_deliveries(body), source="webhook", tariff=TARIFF))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    for _ in range(5):
        barrier.reset()
        results.clear()
        threads = [threading.Thread(target=ingest, args=(body,)) for body in ([started, completed], [twin])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        started, _, completed = events.lifecycle(duration=30_000)
        twin = dict(completed, id=completed["id"] + "-twin")
    assert len(records(db)) == 5 and len(outbox(db)) == 5
    with db.read() as session:
        per_playback = session.execute(select(BillingRecord.playback_id, func.count())
                                       .group_by(BillingRecord.playback_id)).all()
    assert all(count == 1 for _, count in per_playback)


def test_the_database_refuses_a_second_charge_and_any_change(client, webhook_auth, events, db):
    post(client, events.lifecycle(), webhook_auth)
    [record] = records(db)
    row = {c: getattr(record, c) for c in ("kind", "playback_id", "conversation_id", "cause", "duration_ms",
                                           "billable_seconds", "rate_per_minute", "amount_minor", "currency",
                                           "provenance", "created_at")}
    with pytest.raises(IntegrityError), db.transaction() as connection:
        connection.execute(insert(BillingRecord).values(**row, idempotency_key="another-key"))
    for statement in ("UPDATE billing_records SET amount_minor = 0", "DELETE FROM billing_records"):
        with pytest.raises(DatabaseError, match="append-only"), db.transaction() as connection:
            connection.execute(text(statement))
    assert [r.amount_minor for r in records(db)] == [record.amount_minor]


def test_a_failed_unit_of_work_leaves_no_record_no_message_no_audit(db, events):
    with pytest.raises(RuntimeError), db.transaction() as connection:
        result = record_events(connection, parse_deliveries(events.lifecycle()), source="webhook", tariff=TARIFF)
        assert result.charged
        raise RuntimeError("crash before commit")
    assert records(db) == [] and outbox(db) == [] and audit_actions(db) == []


def test_reversal_and_adjustment_are_new_records_that_correct_the_charge(client, webhook_auth, events, db):
    post(client, events.lifecycle(duration=60_000), webhook_auth)
    [charge] = records(db)
    with db.transaction() as connection:
        adjusted = adjust(connection, charge.id, duration_ms=90_000, tariff=TARIFF, cause="reconcile:1", actor="test")
        again = adjust(connection, charge.id, duration_ms=90_000, tariff=TARIFF, cause="reconcile:1", actor="test")
        unchanged = adjust(connection, charge.id, duration_ms=90_000, tariff=TARIFF, cause="reconcile:2", actor="test")
        reversed_id = reverse(connection, charge.id, cause="refund:7", actor="test")
    assert again == adjusted and unchanged is None
    rows = {r.id: r for r in records(db)}
    assert [(r.kind, r.duration_ms, r.billable_seconds, r.amount_minor, r.corrects) for r in rows.values()] == [
        ("charge", 60_000, 60, 60, None),
        ("adjustment", 30_000, 30, 30, charge.id),
        ("reversal", -60_000, -60, -60, charge.id),
    ]
    assert rows[adjusted].idempotency_key == f"adjustment:{charge.playback_id}:reconcile:1"
    assert [m.record_id for m in outbox(db)] == [charge.id, adjusted, reversed_id]
    with pytest.raises(CorrectionError), db.transaction() as connection:
        reverse(connection, reversed_id, cause="again", actor="test")
    with pytest.raises(CorrectionError), db.transaction() as connection:
        reverse(connection, 999_999, cause="nothing", actor="test")
    assert audit_actions(db) == ["billing.charge.created", "billing.adjustment.created", "billing.reversal.created"]


def test_many_records_are_adjusted_at_once_as_one_at_a_time_would(client, webhook_auth, events, db):
    for duration in (60_000, 30_000, 45_000):
        post(client, events.lifecycle(duration=duration), webhook_auth)
    first, second, third = records(db)
    with db.transaction() as connection:
        before = adjust(connection, first.id, duration_ms=70_000, tariff=TARIFF, cause="reconcile:1", actor="test")
        # first: already adjusted for this cause; second: already right; third: 5 s too long,
        # and a second correction of the same playback is ignored.
        made = adjust_many(connection, [Correction(first.id, 90_000), Correction(second.id, 30_000),
                                        Correction(third.id, 40_000), Correction(third.id, 10_000)],
                           tariff=TARIFF, cause="reconcile:1", actor="test")
    *_, adjustment = records(db)
    assert made == [before, adjustment.id]
    assert (adjustment.playback_id, adjustment.duration_ms, adjustment.billable_seconds, adjustment.amount_minor,
            adjustment.corrects) == (third.playback_id, -5_000, -5, -5, third.id)
    assert [m.record_id for m in outbox(db)] == [first.id, second.id, third.id, before, adjustment.id]
    with db.transaction() as connection:
        assert adjust_many(connection, [Correction(third.id, 40_000)], tariff=TARIFF, cause="reconcile:1",
                           actor="test") == [adjustment.id]
    with pytest.raises(CorrectionError), db.transaction() as connection:
        adjust_many(connection, [Correction(third.id, 1_000), Correction(999_999, 1_000)], tariff=TARIFF,
                    cause="reconcile:2", actor="test")
    assert len(records(db)) == 5
    assert audit_actions(db).count("billing.adjustment.created") == 2
    with db.read() as session:
        assert verify_chain(session).ok

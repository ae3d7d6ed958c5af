"""The webhook's terminal report is charged whatever the stream reported before it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing_sync.genesys.payloads import parse_deliveries
from billing_sync.ledger.ingest import record_events
from billing_sync.models import BillingRecord


def _charges(db):
    with db.read() as session:
        return session.execute(select(BillingRecord.playback_id, BillingRecord.duration_ms,
                                      BillingRecord.provenance)).all()


def _stream(db, payload):
    with db.transaction() as connection:
        record_events(connection, parse_deliveries(payload), source="stream")


def test_stream_first_then_webhook_charges_once(client, webhook_auth, events, db):
    lifecycle = events.lifecycle(duration=30_000)
    _stream(db, lifecycle)
    assert _charges(db) == []  # the stream is evidence, never a bill
    assert client.post("/webhooks/genesys", json=lifecycle, headers=webhook_auth).status_code == 200
    assert client.post("/webhooks/genesys", json=lifecycle[2], headers=webhook_auth).status_code == 200
    assert _charges(db) == [(lifecycle[0]["playbackId"], 30_000, "webhook")]


def test_the_charge_is_the_webhooks_report_when_the_stream_disagrees(client, webhook_auth, events, db):
    started, progress, completed = events.lifecycle(duration=30_000)
    stream_says = events.event(playback_id=started["playbackId"], state="stopped", sequence=3, duration=20_000)
    _stream(db, [started, progress, stream_says])
    client.post("/webhooks/genesys", json=[started, progress, completed], headers=webhook_auth)
    assert _charges(db) == [(started["playbackId"], 30_000, "webhook")]


@pytest.mark.parametrize("stream_first", [True, False])
def test_a_failed_webhook_report_is_not_charged(client, webhook_auth, events, db, stream_first):
    lifecycle = events.lifecycle(terminal="failed", duration=0)
    if stream_first:
        _stream(db, lifecycle)
    client.post("/webhooks/genesys", json=lifecycle, headers=webhook_auth)
    assert _charges(db) == []


def test_a_later_conflicting_webhook_terminal_adds_no_charge(client, webhook_auth, events, db):
    started, _, completed = events.lifecycle(duration=9_000)
    client.post("/webhooks/genesys", json=[started, completed], headers=webhook_auth)
    other = events.event(playback_id=started["playbackId"], state="stopped", sequence=5, duration=4_000)
    client.post("/webhooks/genesys", json=other, headers=webhook_auth)
    assert _charges(db) == [(started["playbackId"], 9_000, "webhook")]

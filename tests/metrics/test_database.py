"""Metrics read from the database at scrape time: outbox, stream listeners, reconciliation, a database that is down."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from billing_sync.metrics.database import LISTENER_STATES
from billing_sync.models import DISCREPANCY_KINDS, DISCREPANCY_STATUSES, Discrepancy, OutboxMessage, utcnow
from billing_sync.reconcile import Rules, reconcile
from billing_sync.workers.stream import ListenerState, Shard

from ..billing.conftest import charge
from ..reconcile.conftest import AS_OF, SINCE, TARIFF, UNTIL, FakeAnalytics, Ledger
from .conftest import scrape


def test_outbox_depth_and_oldest_due_age_match_the_database(client, webhook_auth, events, db):
    charge(client, webhook_auth, events, 7)
    now = utcnow()
    with db.write() as session:
        ids = list(session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids[:2])).values(status="dead"))
        session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[2])
                        .values(next_attempt_at=now + timedelta(hours=1)))  # scheduled, not yet due
        session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[3])
                        .values(next_attempt_at=now - timedelta(seconds=125)))  # waiting longest
    before = utcnow()
    metrics = scrape(client)
    after = utcnow()
    with db.read() as session:
        pending = session.scalar(select(func.count()).where(OutboxMessage.status == "pending"))
        dead = session.scalar(select(func.count()).where(OutboxMessage.status == "dead"))
        due_rows = session.execute(select(OutboxMessage.next_attempt_at).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= before)).scalars().all()
    assert (pending, dead, len(due_rows)) == (5, 2, 4)
    assert metrics.value("billing_sync_outbox_messages", status="pending") == pending
    assert metrics.value("billing_sync_outbox_messages", status="dead") == dead
    assert metrics.value("billing_sync_outbox_due_messages") == len(due_rows)
    age = metrics.value("billing_sync_outbox_oldest_due_age_seconds")
    oldest = now - timedelta(seconds=125)
    assert (before - oldest).total_seconds() <= age <= (after - oldest).total_seconds()


def test_an_empty_outbox_has_nothing_due(client):
    metrics = scrape(client)
    assert metrics.value("billing_sync_outbox_messages", status="pending") == 0
    assert metrics.value("billing_sync_outbox_due_messages") == 0
    assert metrics.value("billing_sync_outbox_oldest_due_age_seconds") == 0


def test_stream_listener_shards_as_the_workers_wrote_them(client, db, api_key):
    connected = ListenerState(db, Shard(0, 2))
    connected.channels.update({"streaming-0-a", "streaming-0-b"})
    connected.change(topics=9, connects=3, disconnects=1, last_reason="socket_closing")
    dropped = ListenerState(db, Shard(1, 2))
    dropped.change(topics=3, connects=1, disconnects=1)
    metrics = scrape(client)
    listeners = client.get("/api/v1/stream", headers=api_key("viewer")).get_json()["listeners"]
    assert [(l["shard"], l["state"]) for l in listeners] == [("0/2", "connected"), ("1/2", "disconnected")]
    for listener in listeners:
        shard = listener["shard"]
        states = {state: metrics.value("billing_sync_stream_listener_state", shard=shard, state=state)
                  for state in LISTENER_STATES}
        assert states == {state: float(state == listener["state"]) for state in LISTENER_STATES}
        assert metrics.value("billing_sync_stream_channels_connected", shard=shard) == listener["channels_connected"]
        assert metrics.value("billing_sync_stream_topics", shard=shard) == listener["topics"]
        assert metrics.value("billing_sync_stream_connects_total", shard=shard) == listener["connects"]
        assert metrics.value("billing_sync_stream_disconnects_total", shard=shard) == listener["disconnects"]
    assert metrics.value("billing_sync_stream_channels_connected", shard="0/2") == 2


def test_discrepancies_by_kind_and_status_are_the_latest_runs(client, db):
    ledger, analytics = Ledger(db), FakeAnalytics()
    healed = ledger.playback("stream", duration_ms=30_000)                        # missing_webhook, healed
    ledger.playback("webhook", minute=7)                                          # missing_stream, info
    conflict = ledger.playback("webhook", state="completed", minute=8)
    ledger.playback("stream", playback_id=conflict, state="failed", minute=8)     # state_conflict, open
    ledger.playback("stream", state="completed", minute=59)                       # missing_webhook, pending
    analytics.report("conv-1", playbacks=9, completed=9, played_ms=1)             # analytics_*_mismatch, open

    def run():
        return reconcile(db, analytics, TARIFF, since=SINCE, until=UNTIL, rules=Rules(grace_s=600), actor="test",
                         as_of=UNTIL + timedelta(seconds=30))

    run()
    ledger.playback("webhook", playback_id=healed, duration_ms=30_000)            # the late webhook: now agrees
    latest = run()
    metrics = scrape(client)
    with db.read() as session:
        found = {(kind, status): n for kind, status, n in session.execute(
            select(Discrepancy.kind, Discrepancy.status, func.count())
            .where(Discrepancy.run_id == latest.run_id).group_by(Discrepancy.kind, Discrepancy.status))}
    assert found == {(kind, status): n for kind, by_status in latest.counts.items() for status, n in by_status.items()}
    assert len(found) >= 4 and ("missing_webhook", "healed") not in found
    assert metrics.labelled("billing_sync_reconciliation_discrepancies") == {
        frozenset({("kind", kind), ("status", status)}): found.get((kind, status), 0)
        for kind in DISCREPANCY_KINDS for status in DISCREPANCY_STATUSES
    }
    assert metrics.value("billing_sync_reconciliation_last_run_until_timestamp_seconds") == UNTIL.timestamp()


def test_a_database_that_does_not_answer_is_reported_not_raised(app, client):
    services = app.extensions["billing_sync"]
    services.db.engine.dispose()
    broken = type(services.db).from_url("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    app.extensions["billing_sync"] = type(services)(**{**services.__dict__, "db": broken})
    try:
        metrics = scrape(client)
    finally:
        app.extensions["billing_sync"] = services
        broken.dispose()
    assert metrics.value("billing_sync_metrics_database_up") == 0
    assert "billing_sync_outbox_messages" not in {name for name, _ in metrics.samples}
    assert metrics.get("billing_sync_http_requests_in_flight") == 1

"""The first terminal event per witness kept on the playback row: always what the events say."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_sync import schema
from billing_sync.db import make_engine
from billing_sync.ledger import terminals
from billing_sync.ledger.events import PlaybackEvent, ReceivedEvent
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.rating import Tariff
from billing_sync.models import Playback

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
TARIFF = Tariff(Decimal("0.60"), "EUR")
STATES = ("started", "progress", "progress", "completed", "stopped", "failed")


def _stored(connection):
    columns = [getattr(Playback, name) for name in terminals.COLUMNS]
    return [tuple(row) for row in connection.execute(
        select(Playback.playback_id, *columns).order_by(Playback.playback_id))]


def _derived(connection):
    return [tuple(row) for row in connection.execute(terminals.derived())]


def _traffic(rng: random.Random, playbacks: int) -> list[tuple[str, ReceivedEvent]]:
    """Per playback a few events from each witness (some conflicting terminal ones), each
    delivery possibly repeated: (source, event) in random order."""
    deliveries = []
    for n in range(playbacks):
        playback_id = f"pb-{n:03d}"
        for source in rng.sample(["webhook", "stream", "analytics"], rng.randint(1, 3)):
            for sequence in range(1, rng.randint(2, 6)):
                event = PlaybackEvent(conversation_id=f"conv-{n // 4}", playback_id=playback_id,
                                      state=rng.choice(STATES), duration_ms=rng.randrange(0, 60000, 250),
                                      sequence=sequence, occurred_at=T0 + timedelta(seconds=n + sequence))
                received = ReceivedEvent(uuid.UUID(int=rng.getrandbits(128)).hex, event, {})
                deliveries += [(source, received)] * rng.choice((1, 1, 2))
    rng.shuffle(deliveries)
    return deliveries


@pytest.mark.parametrize("seed", range(4))
def test_random_duplicated_out_of_order_ingest_keeps_what_the_events_say(db, seed):
    rng = random.Random(seed)
    deliveries = _traffic(rng, 40)
    while deliveries:
        source = deliveries[0][0]
        size = rng.randint(1, 30)
        batch = [received for s, received in deliveries[:size] if s == source]
        deliveries = [d for i, d in enumerate(deliveries) if i >= size or d[0] != source]
        with db.transaction() as connection:
            record_events(connection, batch, source=source, tariff=TARIFF if source == "webhook" else None)
    with db.engine.connect() as connection:
        stored, derived = _stored(connection), _derived(connection)
    assert len(stored) == 40
    assert stored == derived
    assert any(row[2] is not None for row in stored) and any(row[6] is not None for row in stored)


def test_a_later_terminal_event_with_a_lower_id_replaces_the_first():
    """PostgreSQL draws ids at insert, not at commit: the lower id wins, whichever transaction folds last."""
    held = {"webhook_terminal_id": 9, "webhook_terminal_state": "completed", "webhook_terminal_ms": 1000,
            "webhook_terminal_at": T0, **terminals.columns_of("stream")}
    earlier = {"webhook_terminal_id": 7, "webhook_terminal_state": "stopped", "webhook_terminal_ms": 500,
               "webhook_terminal_at": T0}
    later = dict(earlier, webhook_terminal_id=11)
    assert terminals.with_first(held, earlier, "webhook") == held | earlier
    assert terminals.with_first(held, later, "webhook") == held
    assert terminals.with_first(held, None, "webhook") == held


def test_the_migration_backfills_what_the_events_say(tmp_path):
    """Upgrading a ledger written before the columns existed fills them from its events."""
    engine = make_engine(f"sqlite:///{tmp_path}/backfill.db")
    schema.upgrade(engine, "0006")
    with engine.begin() as connection:
        for i, (source, state) in enumerate([("webhook", "progress"), ("stream", "stopped"), ("webhook", "completed"),
                                             ("webhook", "failed"), ("stream", "completed")]):
            connection.exec_driver_sql(
                "INSERT INTO playback_events (source, source_event_id, playback_id, conversation_id, state,"
                " duration_ms, sequence, occurred_at, received_at, payload)"
                f" VALUES ('{source}', 'e{i}', 'pb-1', 'c', '{state}', {i * 1000}, {i}, '2026-11-24 02:00:0{i}.000000',"
                " '2026-11-24 02:00:00.000000', '{}')")
        connection.exec_driver_sql(
            "INSERT INTO playbacks (playback_id, conversation_id, state, duration_ms, created_at, updated_at)"
            " VALUES ('pb-1', 'c', 'stopped', 1000, '2026-11-24 02:00:00', '2026-11-24 02:00:00'),"
            " ('pb-2', 'c', 'requested', 0, '2026-11-24 02:00:00', '2026-11-24 02:00:00')")
    schema.upgrade(engine)
    with engine.connect() as connection:
        stored, derived = _stored(connection), _derived(connection)
    engine.dispose()
    assert stored == derived
    assert stored[0][1:3] == (3, "completed") and stored[0][5:7] == (2, "stopped")
    assert stored[1][1:] == (None,) * 8

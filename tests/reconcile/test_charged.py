"""`playbacks.charged`, kept by a trigger: always whether a charge record exists for the playback."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import exists, select

from billing_sync.ledger.events import PlaybackEvent, ReceivedEvent
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.records import Ended, adjust, charge_ended, reverse
from billing_sync.models import BillingRecord, Playback

from .conftest import SINCE, TARIFF


def stored_and_derived(db) -> tuple[list, list]:
    """Per playback: (id, charged) as stored, and as the billing records say it should be."""
    has_charge = exists().where(BillingRecord.playback_id == Playback.playback_id, BillingRecord.kind == "charge")
    with db.read() as session:
        stored = session.execute(select(Playback.playback_id, Playback.charged).order_by(Playback.playback_id)).all()
        derived = session.execute(select(Playback.playback_id, has_charge).order_by(Playback.playback_id)).all()
    return [(p, bool(c)) for p, c in stored], [(p, bool(c)) for p, c in derived]


@pytest.mark.parametrize("seed", range(3))
def test_random_ingest_heals_and_corrections_keep_charged_equal_to_the_records(db, ledger, analytics, run, seed):
    rng = random.Random(seed)
    playbacks = []
    for n in range(30):
        state = rng.choice(("completed", "stopped", "failed", "progress"))
        duration_ms = rng.randrange(1_000, 60_000, 500)
        sources = rng.choice((["webhook"], ["stream"], ["webhook", "stream"], ["webhook", "webhook"]))
        playback_id = f"pb-{seed}-{n:02d}"
        for source in sources:  # a repeated webhook delivers the same charge again: skipped by its key
            ledger.playback(source, playback_id=playback_id, conversation_id=f"conv-{n // 3}", state=state,
                            duration_ms=duration_ms + (6_000 if source == "webhook" and n % 4 == 0 else 0),
                            minute=n)
        playbacks.append(playback_id)
    for n in range(0, 30, 3):
        analytics.report(f"conv-{n // 3}", 3, 3, rng.randrange(0, 200_000, 1_000))
    run()  # heals: stream charges and adjustments
    for playback_id in rng.sample(playbacks, 5):
        records = ledger.records(playback_id)
        if records:
            with db.transaction() as connection:
                if rng.random() < 0.5:
                    reverse(connection, records[0].id, cause="test:reverse", actor="test")
                else:
                    adjust(connection, records[0].id, duration_ms=1_000, tariff=TARIFF, cause="test:adjust",
                           actor="test")
    stored, derived = stored_and_derived(db)
    assert len(stored) == 30
    assert stored == derived
    assert {charged for _, charged in stored} == {True, False}


def test_a_playback_is_charged_only_once_its_charge_is_written(db, ledger):
    # Written without a tariff: the playback ended, nothing charged it yet.
    event = PlaybackEvent("conv-1", "pb-later", "completed", 4_000, 1, SINCE + timedelta(minutes=1))
    with db.transaction() as connection:
        record_events(connection, [ReceivedEvent("wh-later", event, {})], source="webhook", tariff=None)
    assert stored_and_derived(db)[0] == [("pb-later", False)]
    ended = [Ended("pb-later", "conv-1", "completed", 4_000, None, "api")]
    with pytest.raises(RuntimeError), db.transaction() as connection:
        charge_ended(connection, ended, TARIFF, actor="test")
        raise RuntimeError("rolled back: the charge, and with it the flag")
    assert stored_and_derived(db)[0] == [("pb-later", False)]
    with db.transaction() as connection:
        charge_ended(connection, ended, TARIFF, actor="test")
        charge_ended(connection, ended, TARIFF, actor="test")  # the same key again: skipped, still charged
    stored, derived = stored_and_derived(db)
    assert stored == derived == [("pb-later", True)]

"""Healing written set-based: the records, outbox bodies and audit entries `records.py` would write."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from billing_sync.audit import verify_chain
from billing_sync.ledger.rating import Tariff, amount_minor, billable_seconds
from billing_sync.ledger.records import record_json, webhook_body
from billing_sync.models import AuditEntry, BillingRecord, OutboxMessage, PlaybackEvent
from billing_sync.reconcile import Rules, reconcile

from .conftest import AS_OF, SINCE, UNTIL


def healed(db):
    """Every record a run healed with (provenance stream), with its outbox payload and audit details."""
    with db.read() as session:
        records = list(session.scalars(select(BillingRecord).where(BillingRecord.provenance == "stream")
                                       .order_by(BillingRecord.id)))
        payloads = dict(session.execute(select(OutboxMessage.record_id, OutboxMessage.payload)).all())
        audited = {entry.subject: entry for entry in session.scalars(select(AuditEntry))}
        assert verify_chain(session).ok
    return records, payloads, audited


def test_outbox_bodies_and_audit_entries_are_the_records_even_for_unusual_ids(db, ledger, analytics, run):
    # The database renders the bodies of plain ids; a quote, a backslash or a non-ASCII
    # character takes Python's path. Both must send exactly what `webhook_body` would.
    ids = ["pb-plain", 'pb-"quoted"', "pb-back\\slash", "pb-é-ü", "pb-\u2603"]
    for n, playback_id in enumerate(ids):
        ledger.playback("stream", playback_id=playback_id, conversation_id=f"conv-ö{n}", duration_ms=10_000 + n,
                        minute=n)
    long = ledger.playback("webhook", playback_id="pb-long-é", duration_ms=20_000, minute=10)
    ledger.playback("stream", playback_id=long, duration_ms=14_000, minute=10)
    analytics.report("conv-1", 1, 1, 14_000)
    result = run()
    assert (result.charged, result.adjusted) == (len(ids), 1)
    records, payloads, audited = healed(db)
    assert sorted(r.playback_id for r in records) == sorted([*ids, long])
    for record in records:
        assert payloads[record.id] == webhook_body(record_json(record))
        entry = audited[f"billing_record:{record.id}"]
        assert (entry.actor, entry.action) == ("reconciliation", f"billing.{record.kind}.created")
        assert entry.details == {
            "idempotency_key": record.idempotency_key, "playback_id": record.playback_id,
            "amount_minor": record.amount_minor, "currency": record.currency,
            "billable_seconds": record.billable_seconds, "rate_per_minute": record.rate_per_minute,
            "corrects": record.corrects}


def test_a_stream_charge_ends_when_the_stream_saw_the_playback_end(db, ledger, run):
    first = ledger.playback("stream", duration_ms=10_000, minute=3)
    second = ledger.playback("stream", duration_ms=20_000, minute=7)
    run()
    with db.read() as session:
        ends = dict(session.execute(select(PlaybackEvent.playback_id, PlaybackEvent.occurred_at)
                                    .where(PlaybackEvent.state == "completed")).all())
    assert {r.playback_id: r.ended_at for r in healed(db)[0]} == ends
    assert ends[first] == SINCE + timedelta(minutes=3, seconds=10)
    assert ends[second] == SINCE + timedelta(minutes=7, seconds=20)


def test_heals_are_rated_by_the_rating_rule(db, ledger, analytics):
    # An awkward tariff: a rate that rounds, 6-second increments, a 30-second minimum.
    tariff = Tariff(Decimal("0.333"), "EUR", increment_seconds=6, minimum_seconds=30)
    durations = [1, 999, 1_000, 1_001, 5_999, 29_999, 30_001, 35_999, 36_001, 59_500, 61_000, 3_600_001]
    missing = {ledger.playback("stream", conversation_id=f"conv-m{n}", duration_ms=ms, minute=n): ms
               for n, ms in enumerate(durations)}
    corrected = {}
    for n, ms in enumerate(durations):
        playback_id = ledger.playback("webhook", conversation_id=f"conv-a{n}", duration_ms=ms + 100_000,
                                      minute=20 + n)
        ledger.playback("stream", playback_id=playback_id, conversation_id=f"conv-a{n}", duration_ms=ms,
                        minute=20 + n)
        analytics.report(f"conv-a{n}", 1, 1, ms)
        corrected[playback_id] = ms
    result = reconcile(db, analytics, tariff, since=SINCE, until=UNTIL, rules=Rules(), actor="test", as_of=AS_OF)
    assert (result.charged, result.adjusted) == (len(durations), len(durations))
    for playback_id, ms in missing.items():
        [charge] = ledger.records(playback_id)
        rating = tariff.rate(ms)
        assert (charge.duration_ms, charge.billable_seconds, charge.amount_minor, charge.rate_per_minute) == \
            (ms, rating.billable_seconds, rating.amount_minor, "0.333")
    for playback_id, ms in corrected.items():
        charge, adjustment = ledger.records(playback_id)
        # The charge is at ingest's tariff; the adjustment at the charge's rate, the run's increments.
        seconds = billable_seconds(ms, 6, 30)
        assert (charge.duration_ms + adjustment.duration_ms,
                charge.billable_seconds + adjustment.billable_seconds,
                charge.amount_minor + adjustment.amount_minor) == \
            (ms, seconds, amount_minor(Decimal(charge.rate_per_minute), seconds, charge.currency))
        assert (adjustment.corrects, adjustment.rate_per_minute) == (charge.id, charge.rate_per_minute)
    again = reconcile(db, analytics, tariff, since=SINCE, until=UNTIL, rules=Rules(), actor="test", as_of=AS_OF)
    assert (again.charged, again.adjusted) == (0, 0)
    assert {d.status for d in ledger.discrepancies(again.run_id)} == {"healed"}

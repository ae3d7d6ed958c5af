"""Each discrepancy kind: a ledger that produces it, and its healing or its staying open."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from billing_sync.audit import verify_chain
from billing_sync.ledger.events import TERMINAL_STATES, PlaybackEvent, ReceivedEvent
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.records import Ended, charge_ended
from billing_sync.models import AnalyticsConversation, AuditEntry, BillingRecord, OutboxMessage
from billing_sync.models.playback import TERMINAL_CONDITION

from .conftest import SINCE, TARIFF, UNTIL


def kinds(ledger, run_id):
    return sorted((d.kind, d.status, d.playback_id) for d in ledger.discrepancies(run_id))


def test_agreeing_witnesses_find_nothing(ledger, analytics, run):
    first = ledger.both(duration_ms=12_000)
    ledger.both(duration_ms=8_000, state="stopped", minute=6)
    analytics.report("conv-1", playbacks=2, completed=1, played_ms=20_000)
    result = run()
    assert kinds(ledger, result.run_id) == []
    assert result.counts == {} and (result.charged, result.adjusted) == (0, 0)
    assert ledger.billed(first) == (12_000, 12)


def test_missing_webhook_is_charged_from_the_stream_once(db, ledger, analytics, run):
    playback_id = ledger.playback("stream", duration_ms=30_000)
    analytics.report("conv-1", 1, 1, 30_000)
    first = run()
    [found] = ledger.discrepancies(first.run_id)
    assert (found.kind, found.status, found.stream_ms) == ("missing_webhook", "healed", 30_000)
    [charge] = ledger.records(playback_id)
    assert (charge.kind, charge.provenance, charge.duration_ms, charge.amount_minor) == ("charge", "stream", 30_000, 30)
    assert found.record_id == charge.id and first.charged == 1
    with db.read() as session:
        assert session.scalar(select(OutboxMessage.message_id).where(OutboxMessage.record_id == charge.id)) \
            == f"charge:{playback_id}:terminal"
        assert verify_chain(session).ok
    second = run()
    assert second.charged == 0 and [r.id for r in ledger.records(playback_id)] == [charge.id]
    assert kinds(ledger, second.run_id) == [("missing_webhook", "healed", playback_id)]
    # The webhook turning up late cannot charge the playback a second time.
    ledger.playback("webhook", playback_id=playback_id, duration_ms=30_000)
    assert [r.id for r in ledger.records(playback_id)] == [charge.id]


def test_a_run_times_each_step_it_takes(ledger, run):
    ledger.playback("stream")
    every = run()
    assert list(every.seconds) == ["analytics", "evidence", "compare", "heal_charges", "heal_adjustments", "finish",
                                   "commit"]
    assert all(seconds >= 0 for seconds in every.seconds.values())
    no_healing = run(heal_missing_webhook=False, heal_duration=False)
    assert list(no_healing.seconds) == ["analytics", "evidence", "compare", "finish", "commit"]


def test_missing_webhook_within_the_grace_period_is_pending(ledger, run):
    playback_id = ledger.playback("stream", minute=59)
    result = run(as_of=UNTIL + timedelta(seconds=30), grace_s=600)
    assert kinds(ledger, result.run_id) == [("missing_webhook", "pending", playback_id)]
    assert ledger.records(playback_id) == []


def test_missing_webhook_stays_open_when_its_rule_is_off(ledger, run):
    playback_id = ledger.playback("stream")
    result = run(heal_missing_webhook=False)
    assert kinds(ledger, result.run_id) == [("missing_webhook", "open", playback_id)]
    assert ledger.records(playback_id) == []


def test_a_failed_playback_missing_its_webhook_is_not_charged(ledger, run):
    playback_id = ledger.playback("stream", state="failed", duration_ms=0)
    result = run()
    assert kinds(ledger, result.run_id) == [("missing_webhook", "open", playback_id)]
    assert ledger.records(playback_id) == []


def test_missing_stream_is_only_information(ledger, analytics, run):
    playback_id = ledger.playback("webhook")
    analytics.report("conv-1", 1, 1, 12_000)
    result = run()
    assert kinds(ledger, result.run_id) == [("missing_stream", "info", playback_id)]
    assert ledger.billed(playback_id) == (12_000, 12)


def test_state_conflict_stays_open(ledger, run):
    playback_id = ledger.playback("webhook", state="completed")
    ledger.playback("stream", playback_id=playback_id, state="stopped")
    result = run()
    assert kinds(ledger, result.run_id) == [("state_conflict", "open", playback_id)]
    assert len(ledger.records(playback_id)) == 1


def test_duration_contradicted_by_stream_and_analytics_is_adjusted_once(db, ledger, analytics, run):
    playback_id = ledger.playback("webhook", duration_ms=20_000)
    ledger.playback("stream", playback_id=playback_id, duration_ms=14_000)
    analytics.report("conv-1", 1, 1, 14_000)
    first = run()
    [found] = ledger.discrepancies(first.run_id)
    assert (found.kind, found.status, found.webhook_ms, found.stream_ms, found.corroborated) == \
        ("duration_mismatch", "healed", 20_000, 14_000, True)
    charge, adjustment = ledger.records(playback_id)
    assert (adjustment.kind, adjustment.corrects, adjustment.duration_ms, adjustment.amount_minor) == \
        ("adjustment", charge.id, -6_000, -6)
    assert found.record_id == adjustment.id and ledger.billed(playback_id) == (14_000, 14)
    second = run()
    assert second.adjusted == 0 and len(ledger.records(playback_id)) == 2
    assert kinds(ledger, second.run_id) == [("duration_mismatch", "healed", playback_id)]
    with db.read() as session:
        assert verify_chain(session).ok
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions.count("billing.adjustment.created") == 1 and actions[-1] == "reconciliation.finished"


def test_duration_analytics_does_not_confirm_stays_open(ledger, analytics, run):
    playback_id = ledger.playback("webhook", duration_ms=20_000)
    ledger.playback("stream", playback_id=playback_id, duration_ms=14_000)
    analytics.report("conv-1", 1, 1, 20_000)
    result = run()
    [found] = ledger.discrepancies(result.run_id)
    assert (found.kind, found.status, found.corroborated) == ("duration_mismatch", "open", False)
    assert ledger.billed(playback_id) == (20_000, 20)


def test_duration_without_analytics_stays_open(ledger, run):
    playback_id = ledger.playback("webhook", duration_ms=20_000)
    ledger.playback("stream", playback_id=playback_id, duration_ms=14_000)
    result = run()
    [found] = ledger.discrepancies(result.run_id)
    assert (found.status, found.corroborated) == ("open", None)


def test_duration_healing_can_be_switched_off(ledger, analytics, run):
    playback_id = ledger.playback("webhook", duration_ms=20_000)
    ledger.playback("stream", playback_id=playback_id, duration_ms=14_000)
    analytics.report("conv-1", 1, 1, 14_000)
    result = run(heal_duration=False)
    assert kinds(ledger, result.run_id) == [("duration_mismatch", "open", playback_id)]
    assert len(ledger.records(playback_id)) == 1


def test_durations_within_the_tolerance_agree(ledger, analytics, run):
    # 60.0 s against 61.1 s: more than 1 s apart, but within 2% of the longer.
    playback_id = ledger.playback("webhook", duration_ms=60_000)
    ledger.playback("stream", playback_id=playback_id, duration_ms=61_100)
    analytics.report("conv-1", 1, 1, 60_500)
    assert kinds(ledger, run().run_id) == []
    assert kinds(ledger, run(tolerance_ms=500, tolerance_percent=1).run_id) == \
        [("duration_mismatch", "open", playback_id)]


def test_analytics_counting_a_playback_nobody_reported_is_open(ledger, analytics, run):
    ledger.both(duration_ms=12_000)
    analytics.report("conv-1", 2, 2, 20_000)
    analytics.report("conv-lost", 1, 1, 5_000)
    result = run()
    found = sorted((d.kind, d.status, d.conversation_id, d.ledger_count, d.analytics_count, d.ledger_ms,
                    d.analytics_ms) for d in ledger.discrepancies(result.run_id))
    assert found == [
        ("analytics_count_mismatch", "open", "conv-1", 1, 2, 12_000, 20_000),
        ("analytics_count_mismatch", "open", "conv-lost", 0, 1, 0, 5_000),
        ("analytics_duration_mismatch", "open", "conv-1", 1, 2, 12_000, 20_000),
        ("analytics_duration_mismatch", "open", "conv-lost", 0, 1, 0, 5_000),
    ]
    assert result.charged == 0


def test_analytics_younger_than_its_lag_is_pending(ledger, analytics, run):
    ledger.both(duration_ms=12_000, minute=50)
    analytics.report("conv-1", 0, 0, 0)
    result = run(as_of=UNTIL, analytics_lag_s=900)
    assert sorted((d.kind, d.status) for d in ledger.discrepancies(result.run_id)) == [
        ("analytics_count_mismatch", "pending"), ("analytics_duration_mismatch", "pending")]


def test_unbilled_terminal_stays_open(ledger, run):
    # Written without a tariff: the webhook's terminal event is in the ledger, no charge was made.
    event = PlaybackEvent("conv-3", "unbilled-1", "completed", 4_000, 1, SINCE + timedelta(minutes=9))
    with ledger.db.transaction() as connection:
        record_events(connection, [ReceivedEvent("wh-unbilled-1", event, {})], source="webhook", tariff=None)
    result = run()
    assert kinds(ledger, result.run_id) == [("missing_stream", "info", "unbilled-1"),
                                            ("unbilled_terminal", "open", "unbilled-1")]
    assert ledger.records("unbilled-1") == []


def test_orphan_charge_stays_open(ledger, run):
    playback_id = ledger.playback("webhook", state="progress", duration_ms=5_000)
    with ledger.db.transaction() as connection:
        charge_ended(connection, [Ended(playback_id, "conv-1", "completed", 5_000, None, "api")], TARIFF,
                     actor="test")
    result = run()
    assert kinds(ledger, result.run_id) == [("orphan_charge", "open", playback_id)]
    assert len(ledger.records(playback_id)) == 1


def test_the_stream_ending_first_does_not_stop_the_webhook_charging(ledger):
    playback_id = ledger.playback("stream", duration_ms=9_000)
    ledger.playback("webhook", playback_id=playback_id, duration_ms=9_000)
    [charge] = ledger.records(playback_id)
    assert (charge.provenance, charge.duration_ms) == ("webhook", 9_000)
    # A second, conflicting webhook terminal event never charges.
    ledger.playback("webhook", playback_id=playback_id, duration_ms=9_000)
    assert [r.id for r in ledger.records(playback_id)] == [charge.id]


def test_each_source_is_judged_by_its_first_terminal_event(ledger, analytics, run):
    playback_id = ledger.both(duration_ms=12_000)
    # A later, conflicting terminal report from each source: kept in the ledger, never compared.
    late = SINCE + timedelta(minutes=7)
    for source, state, duration_ms in (("webhook", "stopped", 3_000), ("stream", "failed", 0)):
        event = PlaybackEvent("conv-1", playback_id, state, duration_ms, 3, late)
        with ledger.db.transaction() as connection:
            record_events(connection, [ReceivedEvent(f"{source}-late", event, {})], source=source)
    analytics.report("conv-1", 1, 1, 12_000)
    assert kinds(ledger, run().run_id) == []


def test_many_heals_of_both_kinds_in_one_run(db, ledger, analytics, run):
    missing = [ledger.playback("stream", conversation_id="conv-2", duration_ms=10_000 + n * 1_000, minute=n)
               for n in range(5)]
    long = [ledger.playback("webhook", conversation_id=f"conv-{n}", duration_ms=20_000, minute=n)
            for n in range(10, 13)]
    for n, playback_id in enumerate(long, start=10):
        ledger.playback("stream", playback_id=playback_id, conversation_id=f"conv-{n}", duration_ms=14_000, minute=n)
        analytics.report(f"conv-{n}", 1, 1, 14_000)
    first = run()
    assert (first.charged, first.adjusted) == (5, 3)
    assert [ledger.billed(p) for p in missing] == [(10_000 + n * 1_000, 10 + n) for n in range(5)]
    assert [ledger.billed(p) for p in long] == [(14_000, 14)] * 3
    assert {(d.kind, d.status) for d in ledger.discrepancies(first.run_id) if d.playback_id} == \
        {("missing_webhook", "healed"), ("duration_mismatch", "healed")}
    with db.read() as session:
        assert verify_chain(session).ok
        records = list(session.scalars(select(BillingRecord.id).where(BillingRecord.provenance == "stream")))
        audited = set(session.scalars(select(AuditEntry.subject).where(AuditEntry.action.like("billing.%.created"))))
        messages = set(session.scalars(select(OutboxMessage.record_id)))
    assert len(records) == 8 and {f"billing_record:{r}" for r in records} <= audited and set(records) <= messages
    second = run()
    assert (second.charged, second.adjusted) == (0, 0)


def test_analytics_evidence_is_stored_as_reported(db, analytics, run):
    analytics.report("conv-1", 3, 2, 40_000, started_at=SINCE + timedelta(minutes=3, microseconds=7))
    analytics.report("conv-2", 0, 0, 0, started_at=None)
    result = run()
    with db.read() as session:
        stored = session.scalars(select(AnalyticsConversation).where(AnalyticsConversation.run_id == result.run_id)
                                 .order_by(AnalyticsConversation.conversation_id)).all()
        # Compared in SQL with the window's bounds: the stored time must order like the instant.
        later = session.scalar(select(func.count()).select_from(AnalyticsConversation)
                               .where(AnalyticsConversation.conversation_start > SINCE + timedelta(minutes=3)))
    assert [(a.conversation_id, a.conversation_start, a.playbacks, a.completed, a.played_ms) for a in stored] == [
        ("conv-1", SINCE + timedelta(minutes=3, microseconds=7), 3, 2, 40_000), ("conv-2", None, 0, 0, 0)]
    assert later == 1


def test_the_terminal_events_index_holds_every_terminal_state():
    # The comparison finds first terminal events only through this partial index.
    assert set(re.findall(r"'(\w+)'", TERMINAL_CONDITION)) == TERMINAL_STATES

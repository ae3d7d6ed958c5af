"""The comparison: one INSERT ... SELECT that writes every discrepancy of a run.

Everything happens in the database, over joins and aggregates; Python holds no rows, so
memory does not grow with the number of playbacks or events. Per playback (those started
in the window) it compares the first terminal event the webhook delivered, the first one
the stream delivered and the playback's billing; per conversation (those analytics
reported for the window) it compares analytics' counts and milliseconds with the ledger's.

Durations agree when they differ by no more than `tolerance_ms` or by no more than
`tolerance_basis_points` of the longer one, whichever allows more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger, Boolean, Connection, Integer, String, and_, case, cast, func, insert, literal, null, or_, select, union,
    union_all,
)
from sqlalchemy.orm import aliased

from ..ledger.events import TERMINAL_STATES
from ..models import AnalyticsConversation, BillingRecord, Discrepancy, Playback, PlaybackEvent

CHARGEABLE = ("completed", "stopped")
TERMINAL = tuple(sorted(TERMINAL_STATES))
DURATION_CAUSE = "reconcile:duration_mismatch"
# PostgreSQL's per-operation memory for the comparison (its default, 4 MB, spills to disk).
WORK_MEM = "256MB"


@dataclass(frozen=True, slots=True)
class Window:
    """What one run compares and by which rules."""

    run_id: int
    since: datetime
    until: datetime
    as_of: datetime
    grace_s: int
    analytics_lag_s: int
    tolerance_ms: int
    tolerance_basis_points: int

    @property
    def grace_horizon(self) -> datetime:
        return self.as_of - timedelta(seconds=self.grace_s)

    @property
    def analytics_horizon(self) -> datetime:
        return self.as_of - timedelta(seconds=self.analytics_lag_s)


def write_discrepancies(connection: Connection, window: Window) -> None:
    """Compare the ledger, the stream and analytics over the window; write what differs."""
    facts = _playback_facts(window)
    conversations = _conversation_facts(window, facts)
    judged = _judged(window, facts, conversations)
    parts = [*_playback_kinds(window, judged), *_conversation_kinds(window, conversations)]
    columns = [c.name for c in parts[0].selected_columns]
    if connection.dialect.name == "postgresql":
        # Room for the window's hash joins and aggregates in the server, not on its disk.
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
        # Compiling this one statement costs more than the JIT saves running it.
        connection.exec_driver_sql("SET LOCAL jit = off")
    connection.execute(insert(Discrepancy).from_select(columns, union_all(*parts)))


def _scope(window: Window):
    """Playbacks started in the window, and every playback of a conversation analytics reported."""
    started = select(Playback.playback_id).where(Playback.started_at >= window.since,
                                                 Playback.started_at < window.until)
    reported = (select(Playback.playback_id)
                .join(AnalyticsConversation, AnalyticsConversation.conversation_id == Playback.conversation_id)
                .where(AnalyticsConversation.run_id == window.run_id))
    return union(started, reported).cte("scope")


def _first_terminal(source: str, scope):
    """Per playback in scope, the first terminal event `source` delivered (lowest id)."""
    first = (select(PlaybackEvent.playback_id, func.min(PlaybackEvent.id).label("event_id"))
             .join(scope, scope.c.playback_id == PlaybackEvent.playback_id)
             .where(PlaybackEvent.source == source, PlaybackEvent.state.in_(TERMINAL))
             .group_by(PlaybackEvent.playback_id).subquery(f"first_{source}"))
    event = aliased(PlaybackEvent)
    return (select(event.playback_id, event.state, event.duration_ms, event.occurred_at)
            .join(first, event.id == first.c.event_id).cte(f"{source}_terminal"))


def _billing(scope):
    """Per playback in scope: its charge, its duration adjustment, the net milliseconds billed."""
    record = BillingRecord
    return (select(record.playback_id,
                   func.max(case((record.kind == "charge", record.id))).label("charge_id"),
                   func.max(case((and_(record.kind == "adjustment", record.cause == DURATION_CAUSE),
                                  record.id))).label("adjustment_id"),
                   func.sum(record.duration_ms).label("billed_ms"))
            .join(scope, scope.c.playback_id == record.playback_id)
            .group_by(record.playback_id).cte("billing"))


def _playback_facts(window: Window):
    scope = _scope(window)
    webhook, stream, billing = _first_terminal("webhook", scope), _first_terminal("stream", scope), _billing(scope)
    in_window = and_(Playback.started_at >= window.since, Playback.started_at < window.until)
    return (select(Playback.playback_id, Playback.conversation_id, Playback.started_at, Playback.ended_at,
                   case((in_window, True), else_=False).label("in_window"),
                   webhook.c.state.label("w_state"), cast(webhook.c.duration_ms, BigInteger).label("w_ms"),
                   stream.c.state.label("s_state"), cast(stream.c.duration_ms, BigInteger).label("s_ms"),
                   stream.c.occurred_at.label("s_at"),
                   billing.c.charge_id, billing.c.adjustment_id, billing.c.billed_ms)
            .join(scope, scope.c.playback_id == Playback.playback_id)
            .outerjoin(webhook, webhook.c.playback_id == Playback.playback_id)
            .outerjoin(stream, stream.c.playback_id == Playback.playback_id)
            .outerjoin(billing, billing.c.playback_id == Playback.playback_id)
            .cte("facts"))


def _differ(a, b, window: Window):
    """SQL: durations a and b differ by more than the tolerance (both must be known)."""
    difference = func.abs(a - b)
    longer = case((a > b, a), else_=b)
    return and_(difference > window.tolerance_ms, difference * 10000 > longer * window.tolerance_basis_points)


def _conversation_facts(window: Window, facts):
    """Per reported conversation: the ledger's counts and milliseconds (stream-first and webhook-first)."""
    state = func.coalesce(facts.c.w_state, facts.c.s_state)
    terminal = state.isnot(None)
    return (select(facts.c.conversation_id,
                   func.sum(case((terminal, 1), else_=0)).label("count"),
                   func.sum(case((state == "completed", 1), else_=0)).label("completed"),
                   func.sum(case((terminal, func.coalesce(facts.c.s_ms, facts.c.w_ms)), else_=0)).label("stream_ms"),
                   func.sum(case((terminal, func.coalesce(facts.c.w_ms, facts.c.s_ms)), else_=0)).label("webhook_ms"),
                   func.max(func.coalesce(facts.c.ended_at, facts.c.started_at)).label("last_at"))
            .group_by(facts.c.conversation_id).cte("ledger_conversations"))


def _playback_kinds(window: Window, facts) -> list:
    f = facts.c
    both = and_(f.w_state.isnot(None), f.s_state.isnot(None))
    chargeable_evidence = or_(func.coalesce(f.w_state, "").in_(CHARGEABLE),
                              func.coalesce(f.s_state, "").in_(CHARGEABLE))
    return [
        _row(window, facts, "missing_webhook",
             case((f.charge_id.isnot(None), "healed"), (f.s_at > window.grace_horizon, "pending"), else_="open"),
             and_(f.s_state.isnot(None), f.w_state.is_(None)), record_id=f.charge_id),
        _row(window, facts, "missing_stream", literal("info"), and_(f.w_state.isnot(None), f.s_state.is_(None))),
        _row(window, facts, "state_conflict", literal("open"), and_(both, f.w_state != f.s_state)),
        _row(window, facts, "duration_mismatch",
             case((f.adjustment_id.isnot(None), "healed"), else_="open"),
             and_(both, f.w_state == f.s_state, _differ(f.w_ms, f.s_ms, window)),
             record_id=f.adjustment_id, corroborated=f.corroborated),
        _row(window, facts, "unbilled_terminal", literal("open"),
             and_(f.w_state.in_(CHARGEABLE), f.charge_id.is_(None))),
        _row(window, facts, "orphan_charge", literal("open"), and_(f.charge_id.isnot(None), ~chargeable_evidence)),
    ]


def _judged(window: Window, facts, ledger):
    """The facts, with whether analytics agrees with the stream-first total of the conversation
    and not the webhook-first one (None when analytics has nothing comparable)."""
    analytics = AnalyticsConversation
    comparable = and_(analytics.conversation_id.isnot(None), ledger.c.last_at <= window.analytics_horizon)
    sides_with_stream = and_(~_differ(analytics.played_ms, ledger.c.stream_ms, window),
                             _differ(analytics.played_ms, ledger.c.webhook_ms, window))
    corroborated = case((~comparable, cast(null(), Boolean)), (sides_with_stream, True), else_=False)
    return (select(*facts.c, corroborated.label("corroborated"))
            .select_from(facts)
            .outerjoin(analytics, and_(analytics.run_id == window.run_id,
                                       analytics.conversation_id == facts.c.conversation_id))
            .outerjoin(ledger, ledger.c.conversation_id == facts.c.conversation_id)
            .cte("judged"))


def _row(window: Window, facts, kind: str, status, condition, *, record_id=None, corroborated=None):
    f = facts.c
    return (select(literal(window.run_id, BigInteger).label("run_id"), literal(kind).label("kind"),
                   status.label("status"), f.conversation_id, f.playback_id.label("playback_id"),
                   f.w_state.label("webhook_state"), f.s_state.label("stream_state"),
                   f.w_ms.label("webhook_ms"), f.s_ms.label("stream_ms"),
                   cast(null(), Integer).label("ledger_count"), cast(null(), Integer).label("analytics_count"),
                   f.billed_ms.label("ledger_ms"), cast(null(), BigInteger).label("analytics_ms"),
                   (corroborated if corroborated is not None else cast(null(), Boolean)).label("corroborated"),
                   (record_id if record_id is not None else cast(null(), BigInteger)).label("record_id"))
            .where(f.in_window == True, condition))  # noqa: E712 - SQL, not Python


def _conversation_kinds(window: Window, ledger) -> list:
    analytics = AnalyticsConversation
    count = func.coalesce(ledger.c.count, 0)
    completed = func.coalesce(ledger.c.completed, 0)
    stream_ms = func.coalesce(ledger.c.stream_ms, 0)
    webhook_ms = func.coalesce(ledger.c.webhook_ms, 0)
    pending = or_(ledger.c.last_at > window.analytics_horizon, analytics.conversation_start > window.analytics_horizon)
    status = case((pending, "pending"), else_="open")

    def row(kind: str, condition):
        return (select(literal(window.run_id, BigInteger).label("run_id"), literal(kind).label("kind"),
                       status.label("status"), analytics.conversation_id, cast(null(), String).label("playback_id"),
                       cast(null(), String).label("webhook_state"), cast(null(), String).label("stream_state"),
                       cast(null(), BigInteger).label("webhook_ms"), cast(null(), BigInteger).label("stream_ms"),
                       count.label("ledger_count"), analytics.playbacks.label("analytics_count"),
                       webhook_ms.label("ledger_ms"), analytics.played_ms.label("analytics_ms"),
                       cast(null(), Boolean).label("corroborated"), cast(null(), BigInteger).label("record_id"))
                .select_from(analytics)
                .outerjoin(ledger, ledger.c.conversation_id == analytics.conversation_id)
                .where(analytics.run_id == window.run_id, condition))

    return [
        row("analytics_count_mismatch", or_(count != analytics.playbacks, completed != analytics.completed)),
        # Off from both the webhook-first and the stream-first totals: a duration_mismatch
        # between webhook and stream is that kind's to report, not this one's.
        row("analytics_duration_mismatch", and_(_differ(analytics.played_ms, stream_ms, window),
                                                _differ(analytics.played_ms, webhook_ms, window))),
    ]


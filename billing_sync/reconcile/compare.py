"""The comparison: one INSERT ... SELECT that writes every discrepancy of a run.

Everything happens in the database; Python holds no rows, so memory does not grow with
the number of playbacks or events. Per playback (those started in the window) it
compares the first terminal event the webhook delivered, the first one the stream
delivered and the playback's billing; per conversation (those analytics reported for the
window) it compares analytics' counts and milliseconds with the ledger's.

Each playback's first terminal event per witness is kept on its row by ingest
(`ledger/terminals.py`), so the statement reads no events, only `playbacks`, twice:

1. `found`: the playbacks started in the window that a cheap filter says some kind may
   hold for (a few percent), with whether a charge exists (`charged`, which a trigger
   keeps on the row: migration 0008);
2. `ledger_conversations`: the ledger's totals of each conversation analytics reported
   (one aggregate over its playbacks; only those conversations are ever compared);
3. `suspects`: `found` with its billing and whether analytics corroborates the stream;
4. each kind a small SELECT over `suspects` (or over analytics for the conversation kinds).

Durations agree when they differ by no more than `tolerance_ms` or by no more than
`tolerance_basis_points` of the longer one, whichever allows more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger, Boolean, Connection, Integer, String, and_, case, cast, false, func, insert, literal, null,
    or_, select, true, union_all,
)
from ..ledger.records import CHARGEABLE_STATES
from ..models import AnalyticsConversation, BillingRecord, Discrepancy, Playback

CHARGEABLE = tuple(sorted(CHARGEABLE_STATES))
DURATION_CAUSE = "reconcile:duration_mismatch"
# PostgreSQL's per-operation memory for the comparison: the per-conversation aggregate
# (40 MB at 100,000 conversations) stays in memory (its default, 4 MB, spills it to disk).
WORK_MEM = "64MB"
# PostgreSQL settings for the one statement, undone after it (the run's transaction goes on).
_PG_SETTINGS = {
    "work_mem": WORK_MEM,
    # Compiling this one statement costs more than the JIT saves running it.
    "jit": "off",
    # The run's analytics evidence is written in this transaction, so the planner has no
    # statistics for it (it expected 365 conversations of 100,000 at a million playbacks)
    # and would seek playbacks per conversation and sort a million of them by conversation
    # for the totals; every large step is a hash join or a hash aggregate instead. The
    # billing LATERAL stays a nested loop: it can be nothing else.
    "enable_nestloop": "off",
    "enable_sort": "off",
}


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
    postgres = connection.dialect.name == "postgresql"
    ledger = _conversation_totals(window)
    suspects = _suspects(window, _found(window), ledger, postgres)
    parts = [*_playback_kinds(window, suspects), *_conversation_kinds(window, ledger)]
    columns = [c.name for c in parts[0].selected_columns]
    statement = insert(Discrepancy).from_select(columns, union_all(*parts))
    if not postgres:
        connection.execute(statement)
        return
    for name, value in _PG_SETTINGS.items():
        connection.exec_driver_sql(f"SET LOCAL {name} = '{value}'")
    connection.execute(statement)
    for name in _PG_SETTINGS:
        connection.exec_driver_sql(f"SET LOCAL {name} TO DEFAULT")


def _reported(window: Window):
    return select(AnalyticsConversation.conversation_id).where(AnalyticsConversation.run_id == window.run_id)


def _first_terminals() -> list:
    """w_state, w_ms, s_state, s_ms: each playback's first terminal event per witness, from its row."""
    return [Playback.webhook_terminal_state.label("w_state"), cast(Playback.webhook_terminal_ms, BigInteger).label("w_ms"),
            Playback.stream_terminal_state.label("s_state"), cast(Playback.stream_terminal_ms, BigInteger).label("s_ms")]


def _found(window: Window):
    """Playbacks started in the window some playback kind may hold for, with their first
    terminal events, the stream's time (s_at) and whether a charge exists."""
    in_window = and_(Playback.started_at >= window.since, Playback.started_at < window.until)
    started = (select(Playback.playback_id, Playback.conversation_id, *_first_terminals(),
                      Playback.stream_terminal_at.label("s_at"), Playback.charged)
               .where(in_window).subquery("started"))
    # Materialised: filtered before anything joins it.
    return select(started).where(_some_kind_may_hold(window, started.c)).cte("found").prefix_with("MATERIALIZED")


def _differ(a, b, window: Window):
    """SQL: durations a and b differ by more than the tolerance (both must be known)."""
    difference = func.abs(a - b)
    longer = case((a > b, a), else_=b)
    return and_(difference > window.tolerance_ms, difference * 10000 > longer * window.tolerance_basis_points)


def _conversation_totals(window: Window):
    """Per conversation analytics reported: the ledger's counts and milliseconds (stream-first
    and webhook-first) over every playback of it, whenever it started, and its last instant."""
    terminals = select(Playback.conversation_id, *_first_terminals(),
                       func.coalesce(Playback.ended_at, Playback.started_at).label("last_at")
                       ).where(Playback.conversation_id.in_(_reported(window))).subquery("reported_playbacks")
    f = terminals.c
    state = func.coalesce(f.w_state, f.s_state)
    terminal = state.isnot(None)
    return (select(f.conversation_id,
                   func.sum(case((terminal, 1), else_=0)).label("count"),
                   func.sum(case((state == "completed", 1), else_=0)).label("completed"),
                   func.sum(case((terminal, func.coalesce(f.s_ms, f.w_ms)), else_=0)).label("stream_ms"),
                   func.sum(case((terminal, func.coalesce(f.w_ms, f.s_ms)), else_=0)).label("webhook_ms"),
                   func.max(f.last_at).label("last_at"))
            .group_by(f.conversation_id).cte("ledger_conversations"))


def _kind_conditions(window: Window, f) -> dict:
    """Per playback kind: when it holds, over columns w_state, s_state, w_ms, s_ms, charged."""
    both = and_(f.w_state.isnot(None), f.s_state.isnot(None))
    chargeable_evidence = or_(func.coalesce(f.w_state, "").in_(CHARGEABLE),
                              func.coalesce(f.s_state, "").in_(CHARGEABLE))
    return {
        "missing_webhook": and_(f.s_state.isnot(None), f.w_state.is_(None)),
        "missing_stream": and_(f.w_state.isnot(None), f.s_state.is_(None)),
        "state_conflict": and_(both, f.w_state != f.s_state),
        "duration_mismatch": and_(both, f.w_state == f.s_state, _differ(f.w_ms, f.s_ms, window)),
        "unbilled_terminal": and_(f.w_state.in_(CHARGEABLE), f.charged == false()),
        "orphan_charge": and_(f.charged == true(), ~chargeable_evidence),
    }


def _some_kind_may_hold(window: Window, f):
    """SQL, cheap enough for every playback: true wherever some playback kind holds (and for a
    few playbacks more, which the kinds' own conditions then pass over)."""
    return or_(f.w_state.is_(None), f.s_state.is_(None), f.w_state != f.s_state,
               func.abs(f.w_ms - f.s_ms) > window.tolerance_ms, f.charged != f.w_state.in_(CHARGEABLE))


def _suspects(window: Window, found, ledger, postgres: bool):
    """The playbacks found, with their billing and `corroborated`:
    whether analytics agrees with the stream-first total of the conversation and not the
    webhook-first one (None when analytics has nothing comparable)."""
    billing, billed = _billing(found, postgres)
    analytics = AnalyticsConversation
    comparable = and_(analytics.conversation_id.isnot(None), ledger.c.last_at <= window.analytics_horizon)
    sides_with_stream = and_(~_differ(analytics.played_ms, ledger.c.stream_ms, window),
                             _differ(analytics.played_ms, ledger.c.webhook_ms, window))
    corroborated = case((~comparable, cast(null(), Boolean)), (sides_with_stream, True), else_=False)
    return (select(*found.c, corroborated.label("corroborated"), billing.c.charge_id, billing.c.adjustment_id,
                   billing.c.billed_ms)
            .select_from(found)
            .outerjoin(analytics, and_(analytics.run_id == window.run_id,
                                       analytics.conversation_id == found.c.conversation_id))
            .outerjoin(ledger, ledger.c.conversation_id == found.c.conversation_id)
            .outerjoin(billing, billed)
            .cte("suspects"))


def _billing(found, postgres: bool):
    """Per playback found: its charge, its duration adjustment, the net milliseconds billed;
    returned with the condition to outer-join it on.

    The playbacks found are a few percent, but no planner can estimate the filter that
    found them: PostgreSQL, expecting half the ledger, would hash every billing record.
    A LATERAL subquery makes it seek each one's records in the (playback, kind, cause)
    index; SQLite seeks them that way anyway.
    """
    record = BillingRecord
    totals = select(func.max(case((record.kind == "charge", record.id))).label("charge_id"),
                    func.max(case((and_(record.kind == "adjustment", record.cause == DURATION_CAUSE),
                                   record.id))).label("adjustment_id"),
                    func.sum(record.duration_ms).label("billed_ms"))
    if postgres:
        return totals.where(record.playback_id == found.c.playback_id).lateral("billing"), true()
    billing = (totals.add_columns(record.playback_id).join(found, found.c.playback_id == record.playback_id)
               .group_by(record.playback_id).cte("billing"))
    return billing, billing.c.playback_id == found.c.playback_id


def _playback_kinds(window: Window, suspects) -> list:
    s = suspects.c
    holds = _kind_conditions(window, s)
    return [
        _row(window, suspects, "missing_webhook",
             case((s.charge_id.isnot(None), "healed"), (s.s_at > window.grace_horizon, "pending"), else_="open"),
             holds["missing_webhook"], record_id=s.charge_id),
        _row(window, suspects, "missing_stream", literal("info"), holds["missing_stream"]),
        _row(window, suspects, "state_conflict", literal("open"), holds["state_conflict"]),
        _row(window, suspects, "duration_mismatch", case((s.adjustment_id.isnot(None), "healed"), else_="open"),
             holds["duration_mismatch"], record_id=s.adjustment_id, corroborated=s.corroborated),
        _row(window, suspects, "unbilled_terminal", literal("open"), holds["unbilled_terminal"]),
        _row(window, suspects, "orphan_charge", literal("open"), holds["orphan_charge"]),
    ]


def _row(window: Window, suspects, kind: str, status, condition, *, record_id=None, corroborated=None):
    s = suspects.c
    return (select(literal(window.run_id, BigInteger).label("run_id"), literal(kind).label("kind"),
                   status.label("status"), s.conversation_id, s.playback_id.label("playback_id"),
                   s.w_state.label("webhook_state"), s.s_state.label("stream_state"),
                   s.w_ms.label("webhook_ms"), s.s_ms.label("stream_ms"),
                   cast(null(), Integer).label("ledger_count"), cast(null(), Integer).label("analytics_count"),
                   s.billed_ms.label("ledger_ms"), cast(null(), BigInteger).label("analytics_ms"),
                   (corroborated if corroborated is not None else cast(null(), Boolean)).label("corroborated"),
                   (record_id if record_id is not None else cast(null(), BigInteger)).label("record_id"))
            .where(condition))


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

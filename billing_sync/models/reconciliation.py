"""Reconciliation: runs over a window, the analytics evidence each fetched, what each found."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, utcnow

DISCREPANCY_KINDS = ("missing_webhook", "missing_stream", "state_conflict", "duration_mismatch",
                     "analytics_count_mismatch", "analytics_duration_mismatch", "unbilled_terminal",
                     "orphan_charge")
# open: for a person; healed: a billing record settles it; pending: too young to judge;
# info: worth knowing, nothing to do (a stream that missed what the webhook delivered).
DISCREPANCY_STATUSES = ("open", "healed", "pending", "info")


class ReconciliationRun(Base):
    """One comparison of the ledger with the stream and analytics over [since, until)."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    since: Mapped[datetime]
    until: Mapped[datetime]
    # The instant the run judged "now" by: grace and analytics lag count back from it.
    as_of: Mapped[datetime]
    grace_s: Mapped[int]
    analytics_lag_s: Mapped[int]
    tolerance_ms: Mapped[int]
    tolerance_basis_points: Mapped[int]
    heal_missing_webhook: Mapped[bool]
    heal_duration: Mapped[bool]
    requested_by: Mapped[str] = mapped_column(String(128))
    analytics_conversations: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnalyticsConversation(Base):
    """Evidence: one conversation's playback metrics as analytics reported them to one run.

    Its `run_id` key, and the discrepancies' one, PostgreSQL enforces by a trigger once per
    statement rather than a foreign key's check per row: a run writes these by the tens of
    thousands (migration 0010).
    """

    __tablename__ = "analytics_conversations"

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("reconciliation_runs.id"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_start: Mapped[datetime | None]
    playbacks: Mapped[int]
    completed: Mapped[int]
    played_ms: Mapped[int] = mapped_column(BigInteger)


class Discrepancy(Base):
    """One difference a run found, per playback or per conversation, and what became of it."""

    __tablename__ = "discrepancies"
    __table_args__ = (
        Index(None, "run_id", "kind", "status"),
        Index(None, "playback_id"),
        Index(None, "conversation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("reconciliation_runs.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str] = mapped_column(String(64))
    # None for the per-conversation (analytics) kinds.
    playback_id: Mapped[str | None] = mapped_column(String(64))
    webhook_state: Mapped[str | None] = mapped_column(String(16))
    stream_state: Mapped[str | None] = mapped_column(String(16))
    webhook_ms: Mapped[int | None] = mapped_column(BigInteger)
    stream_ms: Mapped[int | None] = mapped_column(BigInteger)
    ledger_count: Mapped[int | None]
    analytics_count: Mapped[int | None]
    ledger_ms: Mapped[int | None] = mapped_column(BigInteger)
    analytics_ms: Mapped[int | None] = mapped_column(BigInteger)
    # For duration_mismatch: analytics agrees with the stream, not the webhook (None: not comparable).
    corroborated: Mapped[bool | None]
    # The billing record that heals it (a charge or an adjustment).
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("billing_records.id"))

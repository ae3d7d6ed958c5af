"""Billing records (immutable, append-only) and the outbox that carries them to the billing system."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, utcnow

RECORD_KINDS = ("charge", "adjustment", "reversal")
OUTBOX_STATUSES = ("pending", "delivered", "dead")
# What became of a delivery attempt, and what the billing system answered ("none": no answer).
DELIVERY_OUTCOMES = ("delivered", "retry", "dead")
DELIVERY_ANSWERS = ("2xx", "3xx", "4xx", "5xx", "none")


class BillingRecord(Base):
    """One charge, adjustment or reversal. Never updated or deleted: a correction is a new row."""

    __tablename__ = "billing_records"
    __table_args__ = (
        # At most one record per (playback, kind, cause): a replayed event never charges twice.
        UniqueConstraint("playback_id", "kind", "cause"),
        CheckConstraint("kind IN ('charge', 'adjustment', 'reversal')", name="kind"),
        CheckConstraint("(kind = 'charge') = (corrects IS NULL)", name="corrects_unless_charge"),
        Index(None, "conversation_id"),
        Index(None, "created_at"),
        Index(None, "corrects"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The outbox message id and `webhook-id`: "<kind>:<playback_id>:<cause>".
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    playback_id: Mapped[str] = mapped_column(String(64), ForeignKey("playbacks.playback_id"))
    conversation_id: Mapped[str] = mapped_column(String(64))
    # Why this record exists: "terminal" for the charge, a reconciliation reference otherwise.
    cause: Mapped[str] = mapped_column(String(128))
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    billable_seconds: Mapped[int] = mapped_column(BigInteger)
    # The exact decimal string the record was rated at, per minute of `currency`.
    rate_per_minute: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Which source established the facts rated here: webhook, stream, analytics, reconciliation.
    provenance: Mapped[str] = mapped_column(String(32))
    corrects: Mapped[int | None] = mapped_column(BigId, ForeignKey("billing_records.id"))
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """One message to the billing system, written in the transaction of its record."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("billing_records.id"), unique=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    # The exact body posted on every attempt, fixed when the record is written.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A dispatcher's claim: the row is its until `leased_until`, then anyone's again.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    leased_until: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(1024))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryCount(Base):
    """How many delivery attempts ended in `outcome` with `answer`, over every dispatcher on any host.

    Incremented in the transaction that settles the attempts, so /metrics reads exact
    totals with one tiny query wherever the dispatchers run.
    """

    __tablename__ = "delivery_counts"

    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    answer: Mapped[str] = mapped_column(String(8), primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger)

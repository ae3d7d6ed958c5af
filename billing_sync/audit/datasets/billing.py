"""The `billing` dataset: billing records created in the window, with their delivery state."""

from __future__ import annotations

from sqlalchemy import outerjoin

from ...models import BillingRecord as B
from ...models import OutboxMessage as O
from . import Column, Dataset, Window, register


def _window(window: Window):
    return (B.created_at >= window.since, B.created_at < window.until)


BILLING = register(Dataset(
    name="billing",
    description="billing records created in the window, with their delivery state",
    columns=(
        Column("id", "integer", B.id),
        Column("created_at", "timestamp", B.created_at),
        Column("kind", "text", B.kind),
        Column("playback_id", "text", B.playback_id),
        Column("conversation_id", "text", B.conversation_id),
        Column("duration_ms", "integer", B.duration_ms),
        Column("billable_seconds", "integer", B.billable_seconds),
        # A decimal string, exactly as rated ("0.60"): text keeps it exact.
        Column("rate_per_minute", "text", B.rate_per_minute),
        Column("amount_minor", "integer", B.amount_minor),
        Column("currency", "text", B.currency),
        Column("provenance", "text", B.provenance),
        Column("corrects", "integer", B.corrects, nullable=True),
        Column("idempotency_key", "text", B.idempotency_key),
        Column("delivery_status", "text", O.status, nullable=True),
        Column("delivery_attempts", "integer", O.attempts, nullable=True),
        Column("delivered_at", "timestamp", O.delivered_at, nullable=True),
    ),
    window=_window,
    order=("created_at", "id"),
    # One outbox row per record (unique record_id), so the join never repeats a record.
    source=lambda: outerjoin(B, O, O.record_id == B.id),
))

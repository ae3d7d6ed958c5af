"""The playback aggregate: every event received (append-only) and the current state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, Json, utcnow

TERMINAL_CONDITION = "state IN ('completed', 'failed', 'stopped')"


class PlaybackEvent(Base):
    """One event from one source, exactly as received. Never updated or deleted."""

    __tablename__ = "playback_events"
    __table_args__ = (
        UniqueConstraint("source", "source_event_id"),
        Index(None, "playback_id", "sequence"),
        Index(None, "received_at"),
        Index(None, "occurred_at"),
        # Reconciliation's first terminal event per playback and source: every column it
        # reads, in (playback, id) order, so the comparison never visits the table.
        Index("ix_playback_events_terminal", "source", "playback_id", "id", "state", "duration_ms", "occurred_at",
              postgresql_where=text(TERMINAL_CONDITION), sqlite_where=text(TERMINAL_CONDITION)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    source_event_id: Mapped[str] = mapped_column(String(128))
    playback_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int]
    sequence: Mapped[int]
    media_url: Mapped[str | None] = mapped_column(String(2048))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict] = mapped_column(Json)


class Playback(Base):
    """One row per playbackId: the state the events add up to.

    On PostgreSQL its pages keep 10% free (fillfactor 90, migration 0009), so an update
    that changes no indexed column (`charged`, a first terminal event) stays on the page.
    """

    __tablename__ = "playbacks"
    __table_args__ = (
        Index(None, "conversation_id"),
        Index(None, "state"),
        Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    playback_id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    # Highest sequence applied; None while only a request exists.
    last_sequence: Mapped[int | None]
    duration_ms: Mapped[int] = mapped_column(default=0)
    media_url: Mapped[str | None] = mapped_column(String(2048))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The first terminal event (lowest id) each witness delivered, as `ledger/terminals.py`
    # keeps it at ingest: reconciliation compares these without seeking the events. None
    # (all four of a witness) until that witness reports an end.
    webhook_terminal_id: Mapped[int | None] = mapped_column(BigId)
    webhook_terminal_state: Mapped[str | None] = mapped_column(String(16))
    webhook_terminal_ms: Mapped[int | None]
    webhook_terminal_at: Mapped[datetime | None]
    stream_terminal_id: Mapped[int | None] = mapped_column(BigId)
    stream_terminal_state: Mapped[str | None] = mapped_column(String(16))
    stream_terminal_ms: Mapped[int | None]
    stream_terminal_at: Mapped[datetime | None]
    # Whether a charge record exists for it: set by a trigger on billing_records in the
    # charge's own transaction (migration 0008), so reconciliation reads it here instead
    # of joining every playback with the records. The trigger is what keeps it true; ingest
    # on PostgreSQL only writes a playback created with its charge as charged already, to
    # spare the trigger a second write of the row (`bulk.write_first`).
    charged: Mapped[bool] = mapped_column(default=False, server_default=false())

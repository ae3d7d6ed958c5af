"""The stream listener's connection state, one row per shard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class StreamListener(Base):
    """The connection state of one `billing-sync stream` shard, for operators and /api/v1/stream."""

    __tablename__ = "stream_listeners"

    shard: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    channels_connected: Mapped[int] = mapped_column(default=0)
    topics: Mapped[int] = mapped_column(default=0)
    connects: Mapped[int] = mapped_column(default=0)
    disconnects: Mapped[int] = mapped_column(default=0)
    last_reason: Mapped[str | None] = mapped_column(String(300))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]

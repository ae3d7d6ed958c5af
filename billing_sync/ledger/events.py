"""Playback events as the ledger knows them, whatever wire shape brought them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATES = ("started", "progress", "completed", "stopped", "failed")
TERMINAL_STATES = frozenset({"completed", "stopped", "failed"})
SOURCES = ("webhook", "stream", "analytics", "api")


@dataclass(frozen=True, slots=True)
class PlaybackEvent:
    """What happened to one playback at one step (contract §6)."""

    conversation_id: str
    playback_id: str
    state: str
    duration_ms: int
    sequence: int
    occurred_at: datetime
    media_url: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event plus the id that makes redeliveries of it recognisable, and the raw payload."""

    source_event_id: str
    event: PlaybackEvent
    payload: dict[str, Any]

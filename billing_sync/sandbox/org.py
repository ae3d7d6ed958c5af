"""The org's ground truth: calls, their participants and every playback, thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .clock import iso_ms
from .media import Media

TERMINAL_STATES = ("completed", "stopped", "failed")


@dataclass
class Participant:
    """One party on a call, with the fields Genesys's CallMediaParticipant carries."""

    id: str
    purpose: str
    name: str
    address: str
    ani: str
    dnis: str
    start_time: datetime
    session_id: str
    direction: str = "inbound"
    state: str = "connected"
    connected_time: datetime | None = None
    end_time: datetime | None = None

    def call_view(self) -> dict:
        """The participant as GET /conversations/calls/{id} shows it."""
        return {
            "id": self.id, "name": self.name, "address": self.address,
            "startTime": iso_ms(self.start_time),
            "connectedTime": iso_ms(self.connected_time) if self.connected_time else None,
            "endTime": iso_ms(self.end_time) if self.end_time else None,
            "purpose": self.purpose, "state": self.state, "direction": self.direction,
            "disconnectType": "endpoint" if self.state == "disconnected" else None,
            "held": False, "wrapupRequired": False, "muted": False, "confined": False,
            "recording": False, "recordingState": "none",
            "ani": self.ani, "dnis": self.dnis,
        }

    def generic_view(self) -> dict:
        """The participant as GET /conversations/{id} shows it: media in `calls`."""
        return {
            "id": self.id, "name": self.name, "address": self.address,
            "startTime": iso_ms(self.start_time),
            "connectedTime": iso_ms(self.connected_time) if self.connected_time else None,
            "endTime": iso_ms(self.end_time) if self.end_time else None,
            "purpose": self.purpose, "ani": self.ani, "dnis": self.dnis,
            "wrapupRequired": False,
            "calls": [{
                "id": self.session_id, "state": self.state, "direction": self.direction,
                "recording": False, "recordingState": "none", "muted": False,
                "confined": False, "held": False,
                "connectedTime": iso_ms(self.connected_time) if self.connected_time else None,
                "disconnectedTime": iso_ms(self.end_time) if self.end_time else None,
                "disconnectType": "endpoint" if self.state == "disconnected" else None,
                "self": {"nameRaw": self.ani, "addressNormalized": self.ani},
                "other": {"nameRaw": self.dnis, "addressNormalized": self.dnis},
                "provider": "Edge",
            }],
        }


@dataclass
class Conversation:
    """A voice call in the org."""

    id: str
    start: datetime
    participants: list[Participant]
    end: datetime | None = None

    @property
    def customer(self) -> Participant:
        return next(p for p in self.participants if p.purpose == "customer")

    @property
    def playable(self) -> bool:
        return any(p.purpose in ("customer", "external") and p.state == "connected"
                   for p in self.participants)

    @property
    def state(self) -> str:
        return "disconnected" if self.end else "connected"


@dataclass
class Playback:
    """One playback of media into a call; `end_ms`/`end_state` say how it would end alone."""

    id: str
    conversation_id: str
    media: Media
    loop: bool
    max_duration_s: int | None
    started_at: datetime
    end_ms: int | None
    end_state: str
    sequence: int = 0
    state: str = "started"
    duration_ms: int = 0
    ended_at: datetime | None = None
    event_ids: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def played_ms(self, at: datetime) -> int:
        """Milliseconds played by `at`, never past the natural end."""
        if self.terminal:
            return self.duration_ms
        if self.media.fetch_fails:
            return 0
        elapsed = max(0, int((at - self.started_at) / timedelta(milliseconds=1)))
        return elapsed if self.end_ms is None else min(elapsed, self.end_ms)

    def truth(self, at: datetime) -> dict:
        return {"playbackId": self.id, "conversationId": self.conversation_id,
                "state": self.state, "duration": self.played_ms(at), "mediaUrl": self.media.url}


class Org:
    """Everything the org holds; callers take `locked()` to read or change it consistently."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.conversations: dict[str, Conversation] = {}
        self.playbacks: dict[str, Playback] = {}
        self.active: dict[str, str] = {}  # conversationId -> running playbackId
        self._by_conversation: dict[str, list[Playback]] = {}
        self._lock = threading.RLock()

    @contextmanager
    def locked(self) -> Iterator[Org]:
        with self._lock:
            yield self

    def add_playback(self, playback: Playback) -> None:
        with self._lock:
            self.playbacks[playback.id] = playback
            self._by_conversation.setdefault(playback.conversation_id, []).append(playback)
            self.active[playback.conversation_id] = playback.id

    def playbacks_of(self, conversation_id: str) -> list[Playback]:
        with self._lock:
            return list(self._by_conversation.get(conversation_id, ()))

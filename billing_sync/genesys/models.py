"""What Genesys Cloud answers, as typed values (the wire shapes live in schemas.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Who the call is with: a playback is heard by these participants (contract §4).
CALLER_PURPOSES = frozenset({"customer", "external"})


@dataclass(frozen=True, slots=True)
class Participant:
    """One party to a call and where it stands."""

    id: str
    purpose: str
    state: str
    direction: str | None = None
    ani: str | None = None
    dnis: str | None = None
    held: bool = False
    muted: bool = False
    connected_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def is_caller(self) -> bool:
        return self.purpose in CALLER_PURPOSES

    @property
    def connected(self) -> bool:
        return self.state == "connected"


@dataclass(frozen=True, slots=True)
class Call:
    """A voice conversation and its participants (GET /api/v2/conversations/calls/{id})."""

    id: str
    participants: tuple[Participant, ...]
    recording_state: str | None = None
    # Only the generic view (GET /api/v2/conversations/{id}) carries a top-level state.
    state: str | None = None

    @property
    def playable(self) -> bool:
        """True when a customer or external participant is connected (contract §4)."""
        return any(p.is_caller and p.connected for p in self.participants)


@dataclass(frozen=True, slots=True)
class Playback:
    """A playback Genesys Cloud accepted (202 from the play action)."""

    id: str
    conversation_id: str
    state: str
    media_url: str | None = None
    loop: bool = False
    max_duration_s: int | None = None


@dataclass(frozen=True, slots=True)
class StoppedPlayback:
    """The playback a stop action ended."""

    id: str
    state: str


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered webhook; Genesys Cloud never returns its password."""

    id: str
    name: str
    address: str
    event_filters: tuple[str, ...] = ()
    method: str = "POST"
    enabled: bool = True
    auth_scheme: str | None = None
    auth_username: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRegistration:
    """The webhook after an idempotent registration, and whether it had to be created."""

    webhook: Webhook
    created: bool
    removed_duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Channel:
    """A notification channel: where to connect, and until when it lives."""

    id: str
    connect_uri: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic on a channel and whether Genesys Cloud permitted it."""

    topic: str
    state: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationPlaybacks:
    """Playback metrics of one conversation from the analytics details query (§9)."""

    conversation_id: str
    started_at: datetime | None
    playbacks: int
    completed: int
    played_ms: int

    @property
    def completion_rate(self) -> float | None:
        """completed / playbacks, or None when nothing reached a terminal state."""
        return self.completed / self.playbacks if self.playbacks else None


@dataclass(frozen=True, slots=True)
class PlaybackMetrics:
    """Per-conversation playback metrics over [since, until), with totals."""

    since: datetime
    until: datetime
    conversations: tuple[ConversationPlaybacks, ...]

    @property
    def playbacks(self) -> int:
        return sum(c.playbacks for c in self.conversations)

    @property
    def completed(self) -> int:
        return sum(c.completed for c in self.conversations)

    @property
    def played_ms(self) -> int:
        return sum(c.played_ms for c in self.conversations)

    @property
    def completion_rate(self) -> float | None:
        """All completed / all playbacks, or None when there were none."""
        return self.completed / self.playbacks if self.playbacks else None

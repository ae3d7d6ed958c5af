"""What can go wrong controlling playback, as domain errors; api/ maps each to an HTTP answer."""

from __future__ import annotations


class PlaybackError(Exception):
    """Base of every playback-control failure; `message` is one line for a human."""

    # True when Genesys Cloud may have carried out the action although this error was raised.
    may_have_happened = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaRefused(PlaybackError):
    """A media URL broke one validation rule; `rule` names it (scheme, host, extension, …)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.reason = message


class ConversationNotFound(PlaybackError):
    """Genesys Cloud knows no such conversation."""


class NotPlayable(PlaybackError):
    """The conversation has no connected customer or external participant."""


class NothingPlaying(PlaybackError):
    """A stop found nothing playing on the conversation."""


class MediaRejected(PlaybackError):
    """Genesys Cloud refused the play request itself (400: payload or media it cannot play)."""


class GenesysRefused(PlaybackError):
    """Our OAuth client may not do this (Genesys 403, or rejected credentials); `missing` names scopes."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class GenesysBusy(PlaybackError):
    """Genesys Cloud rate-limited us after every allowed try; `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenesysNoAnswer(PlaybackError):
    """Genesys Cloud did not answer in time; whether the action took effect is unknown."""

    def __init__(self, message: str, *, may_have_happened: bool) -> None:
        super().__init__(message)
        self.may_have_happened = may_have_happened


class GenesysFailed(PlaybackError):
    """Genesys Cloud could not be reached or failed (5xx, unreadable answer)."""

    def __init__(self, message: str, *, may_have_happened: bool) -> None:
        super().__init__(message)
        self.may_have_happened = may_have_happened


class ControlNotConfigured(PlaybackError):
    """Playback control needs settings that are missing (Genesys client credentials)."""


class IdempotencyKeyReused(PlaybackError):
    """The Idempotency-Key was first used for a different request."""


class IdempotencyKeyInFlight(PlaybackError):
    """A request with this Idempotency-Key is still being carried out."""


class RuleNotFound(PlaybackError):
    """No active switching rule with that id."""

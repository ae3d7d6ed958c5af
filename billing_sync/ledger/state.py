"""The playback state machine: how events, in any order, add up to one state.

`sequence` orders events; a terminal state (completed, stopped, failed) is final; a late
non-terminal event never moves a playback backwards. A second terminal event that
disagrees with the applied one is kept in the ledger but changes nothing: it is reported
as a conflict for the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from .events import TERMINAL_STATES, PlaybackEvent


@dataclass(frozen=True, slots=True)
class PlaybackState:
    state: str
    last_sequence: int | None
    duration_ms: int
    media_url: str | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Conflict:
    """A terminal event that disagrees with the terminal state already applied."""

    applied: PlaybackState
    event: PlaybackEvent
    source_event_id: str


@dataclass(slots=True)
class Outcome:
    state: PlaybackState | None
    conflicts: list[Conflict] = field(default_factory=list)
    became_terminal: bool = False


def apply_events(
    current: PlaybackState | None, events: list[tuple[str, PlaybackEvent]]
) -> Outcome:
    """Fold new events (with their source event ids) into `current`."""
    outcome = Outcome(current)
    for source_event_id, event in sorted(events, key=_order):
        before = outcome.state
        outcome.state = _apply(before, event)
        if before is not None and before.terminal and event.terminal and _disagrees(before, event):
            outcome.conflicts.append(Conflict(before, event, source_event_id))
        if (before is None or not before.terminal) and outcome.state.terminal:
            outcome.became_terminal = True
    return outcome


def event_order(event: PlaybackEvent):
    """The order events are applied in: sequence, non-terminal before terminal, then time."""
    return (event.sequence, event.terminal, event.occurred_at)


def _order(item: tuple[str, PlaybackEvent]):
    return event_order(item[1])


def _disagrees(applied: PlaybackState, event: PlaybackEvent) -> bool:
    return applied.state != event.state or applied.duration_ms != event.duration_ms


def _apply(current: PlaybackState | None, event: PlaybackEvent) -> PlaybackState:
    if current is None:
        return PlaybackState(
            state=event.state,
            last_sequence=event.sequence,
            duration_ms=event.duration_ms,
            media_url=event.media_url,
            started_at=event.occurred_at,
            ended_at=event.occurred_at if event.terminal else None,
        )
    started_at = _earliest(current.started_at, event.occurred_at)
    media_url = current.media_url or event.media_url
    if current.terminal:
        return replace(current, started_at=started_at, media_url=media_url)
    last = current.last_sequence
    if event.terminal:
        return PlaybackState(
            state=event.state,
            last_sequence=event.sequence if last is None else max(last, event.sequence),
            duration_ms=event.duration_ms,
            media_url=media_url,
            started_at=started_at,
            ended_at=event.occurred_at,
        )
    if last is not None and event.sequence <= last:
        return replace(current, started_at=started_at, media_url=media_url)
    return PlaybackState(
        state=event.state,
        last_sequence=event.sequence,
        duration_ms=max(current.duration_ms, event.duration_ms),
        media_url=media_url,
        started_at=started_at,
        ended_at=None,
    )


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a

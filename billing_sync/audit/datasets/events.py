"""The `events` dataset: every ledger event, by when it happened."""

from __future__ import annotations

from ...models import PlaybackEvent as E
from . import Column, Dataset, Window, register


def _window(window: Window):
    return (E.occurred_at >= window.since, E.occurred_at < window.until)


EVENTS = register(Dataset(
    name="events",
    description="every playback event in the ledger that occurred in the window",
    columns=(
        Column("id", "integer", E.id),
        Column("occurred_at", "timestamp", E.occurred_at),
        Column("conversation_id", "text", E.conversation_id),
        Column("playback_id", "text", E.playback_id),
        Column("state", "text", E.state),
        Column("duration_ms", "integer", E.duration_ms),
        Column("sequence", "integer", E.sequence),
        Column("source", "text", E.source),
        Column("event_id", "text", E.source_event_id),
        Column("received_at", "timestamp", E.received_at),
    ),
    window=_window,
    order=("occurred_at", "id"),
))

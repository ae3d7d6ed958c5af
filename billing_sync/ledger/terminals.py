"""Each playback's first terminal event per witness (webhook, stream), kept on its row.

Reconciliation compares, per playback, the first terminal event the webhook delivered
with the first one the stream delivered. Seeking those among the events costs two index
probes per playback; kept on the playback row, in the writes ingest makes to that row
anyway, the comparison reads them in one scan of `playbacks`.

"First" is the lowest event id, as the events table says, so the stored facts always
equal what `DERIVED` reads from the events. The event's id is kept with its facts: on
PostgreSQL ids are drawn at insert, not at commit, so a transaction that folds into a
playback after another may still hold the earlier event, and must then replace it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from ..models import Playback, PlaybackEvent
from .events import TERMINAL_STATES

WITNESSES = ("webhook", "stream")
FIELDS = ("id", "state", "ms", "at")
COLUMNS = tuple(f"{source}_terminal_{field}" for source in WITNESSES for field in FIELDS)
# Their PostgreSQL types, by field (for statements that read them from JSON rows).
PG_TYPES = {"id": "bigint", "state": "text", "ms": "int", "at": "timestamptz"}
PG_COLUMN_TYPES = tuple(f"{source}_terminal_{field} {PG_TYPES[field]}" for source in WITNESSES for field in FIELDS)

# Every playback's columns recomputed from its events, one statement on both databases
# (row values: PostgreSQL, SQLite >= 3.15), a seek in ix_playback_events_terminal per
# playback and witness: for ledgers written by SQL rather than by ingest (the reconcile
# benchmark). Migration 0007 backfills with its own copy of it.
_FIRST = """(SELECT e.id, e.state, e.duration_ms, e.occurred_at FROM playback_events e
             WHERE e.source = '{source}' AND e.playback_id = playbacks.playback_id
               AND e.state IN ('completed', 'failed', 'stopped')
             ORDER BY e.id LIMIT 1)"""
FILL_FROM_EVENTS = "UPDATE playbacks SET " + ", ".join(
    f"({', '.join(f'{source}_terminal_{field}' for field in FIELDS)}) = {_FIRST.format(source=source)}"
    for source in WITNESSES)


def first_terminals(events: Iterable[dict], source: str) -> dict[str, dict]:
    """Per playback, `source`'s terminal columns from its lowest-id terminal event among
    `events` (event rows with their `id`); none when `source` is not a witness."""
    if source not in WITNESSES:
        return {}
    firsts: dict[str, dict] = {}
    for event in events:
        if event["state"] in TERMINAL_STATES:
            best = firsts.get(event["playback_id"])
            if best is None or event["id"] < best["id"]:
                firsts[event["playback_id"]] = event
    return {playback_id: _columns(source, event) for playback_id, event in firsts.items()}


def columns_of(source: str) -> dict:
    """`source`'s terminal columns, all None (none when `source` is not a witness)."""
    return dict.fromkeys(f"{source}_terminal_{field}" for field in FIELDS) if source in WITNESSES else {}


def with_first(stored: dict, first: dict | None, source: str) -> dict:
    """The row's terminal columns (`stored`) with `first` (one witness's) in place of that
    witness's when it came before what the row holds."""
    if first is None:
        return stored
    held = stored[f"{source}_terminal_id"]
    if held is not None and held < first[f"{source}_terminal_id"]:
        return stored
    return stored | first


def stored(row) -> dict:
    """The terminal columns of a playback row (any object with them as attributes)."""
    return {name: getattr(row, name) for name in COLUMNS}


def _columns(source: str, event: dict) -> dict:
    return {f"{source}_terminal_id": event["id"], f"{source}_terminal_state": event["state"],
            f"{source}_terminal_ms": event["duration_ms"], f"{source}_terminal_at": event["occurred_at"]}


def derived():
    """SQL: per playback, the terminal columns as the events say they should be (for checks)."""
    columns = [Playback.playback_id]
    for source in WITNESSES:
        first = (select(PlaybackEvent.id, PlaybackEvent.state, PlaybackEvent.duration_ms, PlaybackEvent.occurred_at)
                 .where(PlaybackEvent.source == source, PlaybackEvent.playback_id == Playback.playback_id,
                        PlaybackEvent.state.in_(sorted(TERMINAL_STATES)))
                 .order_by(PlaybackEvent.id).limit(1))
        columns += [first.with_only_columns(column).scalar_subquery().label(f"{source}_terminal_{field}")
                    for column, field in zip(first.selected_columns, FIELDS, strict=True)]
    return select(*columns).order_by(Playback.playback_id)

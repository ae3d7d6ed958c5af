"""Set-based writes for ingest, one statement per step whatever the batch size.

PostgreSQL gets one short statement per step with the rows as one JSON parameter
(`jsonb_to_recordset`), so the server plans it once and neither psycopg nor SQLAlchemy
build, escape or re-parse a 500-row VALUES list. SQLite writers are
already serialised by `BEGIN IMMEDIATE`, so there "insert if new" is a lookup followed by
an executemany, with no conflict possible in between.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from ..models import Playback, PlaybackEvent

PLAYBACK_STATE_COLUMNS = ("state", "last_sequence", "duration_ms", "media_url", "started_at", "ended_at")

_PG_INSERT_EVENTS_AND_PLAYBACKS = """
WITH new_events AS (
  INSERT INTO playback_events (source, received_at, source_event_id, playback_id, conversation_id,
                               state, duration_ms, sequence, media_url, occurred_at, payload)
  SELECT %(source)s, %(now)s, e.source_event_id, e.playback_id, e.conversation_id, e.state,
         e.duration_ms, e.sequence, e.media_url, e.occurred_at, e.payload
  FROM jsonb_to_recordset(%(events)s::jsonb)
       AS e(source_event_id text, playback_id text, conversation_id text, state text, duration_ms int,
            sequence int, media_url text, occurred_at timestamptz, payload jsonb)
  ON CONFLICT (source, source_event_id) DO NOTHING
  RETURNING source_event_id
), new_playbacks AS (
  INSERT INTO playbacks (created_at, updated_at, playback_id, conversation_id, state, last_sequence,
                         duration_ms, media_url, started_at, ended_at)
  SELECT %(now)s, %(now)s, p.*
  FROM jsonb_to_recordset(%(playbacks)s::jsonb)
       AS p(playback_id text, conversation_id text, state text, last_sequence int, duration_ms int,
            media_url text, started_at timestamptz, ended_at timestamptz)
  ON CONFLICT (playback_id) DO NOTHING
  RETURNING playback_id
)
SELECT 'event', source_event_id FROM new_events
UNION ALL
SELECT 'playback', playback_id FROM new_playbacks
"""

_PG_UPDATE_PLAYBACKS = """
UPDATE playbacks SET state = p.state, last_sequence = p.last_sequence, duration_ms = p.duration_ms,
       media_url = p.media_url, started_at = p.started_at, ended_at = p.ended_at, updated_at = %(now)s
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS p(id bigint, state text, last_sequence int, duration_ms int, media_url text,
          started_at timestamptz, ended_at timestamptz)
WHERE playbacks.id = p.id
"""


def _rows_json(rows: list[dict]) -> str:
    """The rows as one JSON array: one parameter, parsed by the server in C."""
    return json.dumps(rows, separators=(",", ":"), default=_isoformat)


def _isoformat(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to the database as JSON")


def _is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def insert_new(
    connection: Connection, events: list[dict], playbacks: list[dict], *, source: str, now: datetime
) -> tuple[set[str], set[str]]:
    """Insert the events and playbacks not yet known; return the ids of those inserted.

    `playbacks` are already folded from their events: a playback not yet in the ledger
    cannot have events in it either, since both are written in one transaction.
    """
    if _is_postgres(connection):
        params = {"events": _rows_json(events), "playbacks": _rows_json(playbacks), "source": source, "now": now}
        inserted: dict[str, set[str]] = {"event": set(), "playback": set()}
        for kind, key in connection.exec_driver_sql(_PG_INSERT_EVENTS_AND_PLAYBACKS, params):
            inserted[kind].add(key)
        return inserted["event"], inserted["playback"]
    return (
        _insert_unknown(connection, PlaybackEvent, "source_event_id", events,
                        {"source": source, "received_at": now}, PlaybackEvent.source == source),
        _insert_unknown(connection, Playback, "playback_id", playbacks, {"created_at": now, "updated_at": now}),
    )


def _insert_unknown(connection: Connection, model, key: str, rows: list[dict], extra: dict, *where) -> set[str]:
    """SQLite: insert the rows whose `key` is not in the table yet (writers are serialised)."""
    column = getattr(model, key)
    known = set(connection.scalars(select(column).where(column.in_([row[key] for row in rows]), *where)))
    fresh = [row | extra for row in rows if row[key] not in known]
    if fresh:
        connection.execute(insert(model), fresh)
    return {row[key] for row in fresh}


def update_playbacks(connection: Connection, rows: list[dict], *, now: datetime) -> None:
    """Write new states (rows carry the row `id` and PLAYBACK_STATE_COLUMNS)."""
    if not rows:
        return
    if _is_postgres(connection):
        params = {"rows": _rows_json(rows), "now": now}
        connection.exec_driver_sql(_PG_UPDATE_PLAYBACKS, params)
        return
    statement = (
        update(Playback)
        .where(Playback.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in PLAYBACK_STATE_COLUMNS} | {"updated_at": now})
    )
    connection.execute(statement, [{f"b_{key}": value for key, value in row.items()} for row in rows])

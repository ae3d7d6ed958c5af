"""Set-based writes for ingest, one statement per step whatever the batch size.

PostgreSQL gets one statement per step with the rows as one JSON parameter
(`jsonb_to_recordset`), so the server plans it once (psycopg prepares it) and neither
psycopg nor SQLAlchemy build, escape or re-parse a 500-row VALUES list; the statements go
straight to the driver, and the first step's two go in one pipeline. SQLite writers are
already serialised by `BEGIN IMMEDIATE`, so there "insert if new" is a lookup followed by
an executemany, with no conflict possible in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import SimpleNamespace

from sqlalchemy import Connection, bindparam, insert, select, update

from ..db import rows_json
from ..models import Playback, PlaybackEvent
from . import records, terminals
from .events import TERMINAL_STATES

PLAYBACK_STATE_COLUMNS = ("state", "last_sequence", "duration_ms", "media_url", "started_at", "ended_at")

_PG_FIRST_WRITE_TEMPLATE = """
WITH new_events AS (
  INSERT INTO playback_events (source, received_at, source_event_id, playback_id, conversation_id,
                               state, duration_ms, sequence, media_url, occurred_at, payload)
  SELECT %(source)s, %(now)s, e.source_event_id, e.playback_id, e.conversation_id, e.state,
         e.duration_ms, e.sequence, e.media_url, e.occurred_at, e.payload
  FROM jsonb_to_recordset(%(events)s::jsonb)
       AS e(source_event_id text, playback_id text, conversation_id text, state text, duration_ms int,
            sequence int, media_url text, occurred_at timestamptz, payload jsonb)
  ON CONFLICT (source, source_event_id) DO NOTHING
  RETURNING id, source_event_id, playback_id, state, duration_ms, occurred_at
), new_playbacks AS (
  INSERT INTO playbacks (created_at, updated_at, playback_id, conversation_id, state, last_sequence,
                         duration_ms, media_url, started_at, ended_at, charged{terminal_columns})
  SELECT %(now)s, %(now)s, p.*{terminal_values}
  FROM jsonb_to_recordset(%(playbacks)s::jsonb)
       AS p(playback_id text, conversation_id text, state text, last_sequence int, duration_ms int,
            media_url text, started_at timestamptz, ended_at timestamptz, charged boolean){terminal_join}
  ON CONFLICT (playback_id) DO NOTHING
  RETURNING playback_id
), {charges}
SELECT 'event', source_event_id, id FROM new_events
UNION ALL
SELECT 'playback', playback_id, NULL FROM new_playbacks
UNION ALL
SELECT 'record', idempotency_key, id FROM records
"""

_PG_LOCK_PLAYBACKS = f"""
SELECT id, playback_id, conversation_id, {", ".join(PLAYBACK_STATE_COLUMNS + terminals.COLUMNS)}
FROM playbacks WHERE playback_id = ANY(%(playback_ids)s) ORDER BY id FOR UPDATE
"""

# A new playback's first terminal event from a witness: the lowest id among the events
# this statement inserted (a new playback has no others).
_PG_FIRST_TERMINALS = f"""
       LEFT JOIN (SELECT DISTINCT ON (playback_id) playback_id, id, state, duration_ms, occurred_at
                  FROM new_events WHERE state IN ({", ".join(f"'{s}'" for s in sorted(TERMINAL_STATES))})
                  ORDER BY playback_id, id) t USING (playback_id)"""


@cache
def _pg_first_write(source: str) -> str:
    """The first write's statement (one text per source, so psycopg prepares each once); for a
    witness, it also fills the new playbacks' first terminal."""
    witness = source in terminals.WITNESSES
    columns = terminals.columns_of(source)
    return (_PG_FIRST_WRITE_TEMPLATE
            .replace("{charges}", records.pg_record_ctes("given_records JOIN new_playbacks USING (playback_id)"))
            .replace("{terminal_columns}", "".join(f", {c}" for c in columns))
            .replace("{terminal_values}", ", t.id, t.state, t.duration_ms, t.occurred_at" if witness else "")
            .replace("{terminal_join}", _PG_FIRST_TERMINALS if witness else ""))


_SELECT_PLAYBACKS = (
    select(Playback.id, Playback.playback_id, Playback.conversation_id,
           *[getattr(Playback, c) for c in PLAYBACK_STATE_COLUMNS + terminals.COLUMNS])
    .where(Playback.playback_id.in_(bindparam("playback_ids", expanding=True)))
    .order_by(Playback.id)
)

# Built once: SQLAlchemy compiles and caches them instead of building a statement per call.
_KNOWN_EVENTS = select(PlaybackEvent.source_event_id).where(
    PlaybackEvent.source == bindparam("source"), PlaybackEvent.source_event_id.in_(bindparam("keys", expanding=True)))
_KNOWN_PLAYBACKS = select(Playback.playback_id).where(Playback.playback_id.in_(bindparam("keys", expanding=True)))
_INSERT_EVENTS = insert(PlaybackEvent)
# Terminal events from a witness: their ids are each playback's first terminal candidates.
_INSERT_RETURNING_IDS = insert(PlaybackEvent).returning(PlaybackEvent.id, PlaybackEvent.source_event_id)
_INSERT_PLAYBACKS = insert(Playback)

_PG_UPDATE_PLAYBACKS = f"""
UPDATE playbacks SET state = p.state, last_sequence = p.last_sequence, duration_ms = p.duration_ms,
       media_url = p.media_url, started_at = p.started_at, ended_at = p.ended_at, updated_at = %(now)s,
       {", ".join(f"{c} = p.{c}" for c in terminals.COLUMNS)}
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS p(id bigint, state text, last_sequence int, duration_ms int, media_url text,
          started_at timestamptz, ended_at timestamptz, {", ".join(terminals.PG_COLUMN_TYPES)})
WHERE playbacks.id = p.id
"""


def _is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


@dataclass
class FirstWrite:
    """What the first round trip of a unit of work wrote and locked."""

    inserted: set[str] = field(default_factory=set)  # source event ids written
    # Row ids by source event id: every event written on PostgreSQL, at least a witness's
    # terminal ones on SQLite (what `terminals.first_terminals` reads).
    event_ids: dict[str, int] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # playback ids created
    charged: list[tuple[int, str]] = field(default_factory=list)  # (record id, key) of the charges written
    existing: list = field(default_factory=list)  # the other playbacks' rows, locked, by id


def write_first(
    connection: Connection, events: list[dict], playbacks: list[dict], charges: list[dict], *,
    source: str, now: datetime,
) -> FirstWrite:
    """Insert the new events and playbacks, charge the playbacks created (`charges` are their
    would-be charges), and lock the playbacks that already existed.

    On PostgreSQL the inserts are one round trip, and the lock one more only when some
    playbacks already existed (rows just created are ours already: no lock to write).
    """
    if not _is_postgres(connection):
        return _write_first_sqlite(connection, events, playbacks, charges, source=source, now=now)
    driver = connection.connection.driver_connection
    # A playback created with its charge is written charged: the charge's trigger (migration
    # 0008) then finds nothing to update, instead of writing the row a second time.
    charging = {row["playback_id"] for row in charges}
    playbacks = [{**row, "charged": row["playback_id"] in charging} for row in playbacks]
    # A pipeline: the BEGIN and the statement in one round trip; the statement prepared once.
    with driver.pipeline():
        first = driver.cursor()
        first.execute(_pg_first_write(source), {
            "events": rows_json(events), "playbacks": rows_json(playbacks), "source": source, "now": now,
            "records": records.pg_records_json(charges),
        })
    written = FirstWrite()
    for kind, key, record_id in first.fetchall():
        if kind == "event":
            written.inserted.add(key)
            written.event_ids[key] = record_id
        elif kind == "playback":
            written.created.add(key)
        else:
            written.charged.append((record_id, key))
    written.charged.sort()
    others = _known_with_new_events(events, written)
    if others:
        # A statement of its own, after the inserts: it sees rows other writers committed meanwhile.
        locked = driver.cursor()
        locked.execute(_PG_LOCK_PLAYBACKS, {"playback_ids": others})
        written.existing = _named_rows(locked)
    return written


def _known_with_new_events(events: list[dict], written: FirstWrite) -> list[str]:
    """The playbacks that existed before and got new events: the ones to lock and fold into."""
    return sorted({row["playback_id"] for row in events if row["source_event_id"] in written.inserted}
                  - written.created)


def _named_rows(cursor) -> list:
    names = [column.name for column in cursor.description]
    return [SimpleNamespace(**dict(zip(names, values, strict=True))) for values in cursor.fetchall()]


def _write_first_sqlite(connection, events, playbacks, charges, *, source, now) -> FirstWrite:
    inserted, event_ids, created = insert_new(connection, events, playbacks, source=source, now=now)
    written = FirstWrite(inserted=inserted, event_ids=event_ids, created=created)
    written.charged = records.insert_records(connection, [row for row in charges if row["playback_id"] in created])
    others = _known_with_new_events(events, written)
    if others:
        written.existing = list(connection.execute(_SELECT_PLAYBACKS, {"playback_ids": others}))
    return written


def insert_new(
    connection: Connection, events: list[dict], playbacks: list[dict], *, source: str, now: datetime
) -> tuple[set[str], dict[str, int], set[str]]:
    """SQLite: insert the events and playbacks not yet known; return the source event ids
    inserted, the row ids of the terminal ones from a witness, and the playback ids inserted.

    `playbacks` are already folded from their events: a playback not yet in the ledger
    cannot have events in it either, since both are written in one transaction. So a new
    playback's first terminal events are among those inserted here. Only terminal events
    are inserted with RETURNING: it costs SQLAlchemy a quarter more per row than executemany.
    """
    known_events = set(connection.scalars(_KNOWN_EVENTS, {"source": source, "keys": [e["source_event_id"] for e in events]}))
    known_playbacks = set(connection.scalars(_KNOWN_PLAYBACKS, {"keys": [p["playback_id"] for p in playbacks]}))
    fresh_events = [row | {"source": source, "received_at": now} for row in events
                    if row["source_event_id"] not in known_events]
    witness = source in terminals.WITNESSES
    terminal, others = [], []
    for row in fresh_events:
        (terminal if witness and row["state"] in TERMINAL_STATES else others).append(row)
    if others:
        connection.execute(_INSERT_EVENTS, others)
    event_ids = {}
    if terminal:
        event_ids = {key: event_id for event_id, key in connection.execute(_INSERT_RETURNING_IDS, terminal)}
    firsts = terminals.first_terminals(
        (row | {"id": event_ids[row["source_event_id"]]} for row in terminal), source)
    unknown = {"created_at": now, "updated_at": now} | terminals.columns_of(source)
    fresh_playbacks = [row | unknown | firsts.get(row["playback_id"], {})
                       for row in playbacks if row["playback_id"] not in known_playbacks]
    if fresh_playbacks:
        connection.execute(_INSERT_PLAYBACKS, fresh_playbacks)
    return ({row["source_event_id"] for row in fresh_events}, event_ids,
            {row["playback_id"] for row in fresh_playbacks})


def update_playbacks(connection: Connection, rows: list[dict], *, now: datetime) -> None:
    """Write new states (rows carry the row `id`, PLAYBACK_STATE_COLUMNS and terminals.COLUMNS)."""
    if not rows:
        return
    if _is_postgres(connection):
        params = {"rows": rows_json(rows), "now": now}
        connection.connection.cursor().execute(_PG_UPDATE_PLAYBACKS, params)
        return
    statement = (
        update(Playback)
        .where(Playback.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in PLAYBACK_STATE_COLUMNS + terminals.COLUMNS}
                | {"updated_at": now})
    )
    connection.execute(statement, [{f"b_{key}": value for key, value in row.items()} for row in rows])

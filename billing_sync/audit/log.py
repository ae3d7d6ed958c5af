"""Appending to the audit chain inside the caller's transaction.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
JSON. Writers serialise on the single `audit_chain_head` row (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite writers are serialised by `BEGIN IMMEDIATE`), so concurrent
transactions can never chain two entries to the same predecessor. The lock is held until
the caller commits: append audit entries last in a unit of work.

Entries appended together cost one lock, one insert and one head update however many
there are; on PostgreSQL the insert and the update are one statement, sent straight to
the driver, and `append_chained` has the server compute the hashes too, so the lock every
writer queues on is held for no round trip (ingest appends an entry for every charge).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring as _encode_unicode
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..db import json_value, send_pending, send_with_commit
from ..models import AuditChainHead, AuditEntry, utcnow

GENESIS_HASH = "0" * 64

_LOCK_HEAD = select(AuditChainHead.last_id, AuditChainHead.last_hash).where(AuditChainHead.id == 1).with_for_update()
_INSERT_ENTRIES = insert(AuditEntry)
_UPDATE_HEAD = (update(AuditChainHead).where(AuditChainHead.id == 1)
                .values(last_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash")))

_PG_LOCK_HEAD = "SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE"
_PG_WRITE_ENTRIES = """
WITH entries AS (
  INSERT INTO audit_log (id, created_at, actor, action, subject, details, prev_hash, hash)
  SELECT e.id, %(created_at)s, e.actor, e.action, e.subject, e.details, e.prev_hash, e.hash
  FROM jsonb_to_recordset(%(entries)s::jsonb)
       AS e(id bigint, actor text, action text, subject text, details jsonb, prev_hash text, hash text)
)
UPDATE audit_chain_head SET last_id = %(last_id)s, last_hash = %(last_hash)s WHERE id = 1
"""


# The server chains the entries: it locks the head, hashes each entry's canonical JSON (made
# by Python, with the entry's id left out) onto the previous hash, inserts, moves the head.
_PG_APPEND_CHAINED = """
WITH RECURSIVE head AS (
  SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE
), chain AS (
  SELECT 0 AS n, last_id AS id, last_hash::text AS hash, NULL::text AS prev_hash FROM head
  UNION ALL
  SELECT n + 1, id + 1,
         encode(sha256(convert_to(hash || (%(body_heads)s::jsonb ->> n) || (id + 1) || (%(body_tails)s::jsonb ->> n),
                                  'UTF8')), 'hex'),
         hash
  FROM chain WHERE n < jsonb_array_length(%(body_heads)s::jsonb)
), entries AS (
  INSERT INTO audit_log (id, created_at, actor, action, subject, details, prev_hash, hash)
  SELECT chain.id, %(created_at)s, given.actor, given.action, given.subject, given.details, chain.prev_hash, chain.hash
  FROM chain JOIN jsonb_to_recordset(%(entries)s::jsonb)
                  AS given(n int, actor text, action text, subject text, details jsonb) USING (n)
)
UPDATE audit_chain_head SET last_id = last.id, last_hash = last.hash
FROM (SELECT id, hash FROM chain ORDER BY n DESC LIMIT 1) AS last
WHERE audit_chain_head.id = 1
"""


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An action to chain onto the log: who did what to which subject, with what details."""

    actor: str
    action: str
    subject: str
    details: dict[str, Any] | None = None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str, *, id: int, created_at: datetime, actor: str, action: str,
    subject: str, details: dict[str, Any],
) -> str:
    body = canonical_json({
        "id": id,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
    })
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(
    session: Session | Connection, actor: str, action: str, subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Chain one entry onto the audit log in the transaction of `session` (ORM or Core)."""
    return AuditEntry(**_append(session, [NewEntry(actor, action, subject, details)])[0])


def append_many(session: Session | Connection, entries: Sequence[NewEntry]) -> int:
    """Chain these entries, in order, onto the audit log in the transaction of `session`; how many.

    No entry objects are built: a reconciliation run appends tens of thousands at once.
    """
    return len(_append(session, entries)) if entries else 0


def _append(session: Session | Connection, entries: Sequence[NewEntry]) -> list[dict]:
    if isinstance(session, Session):
        session.flush()  # the caller's pending rows go first: the head lock is taken last
        connection = session.connection()
    else:
        connection = session
    last_id, last_hash = _lock_head(connection)
    rows = _chain(entries, last_id, last_hash, utcnow())
    if connection.dialect.name == "postgresql":
        params = {
            "created_at": rows[0]["created_at"], "last_id": rows[-1]["id"], "last_hash": rows[-1]["hash"],
            "entries": json.dumps([{k: v for k, v in row.items() if k != "created_at"} for row in rows],
                                  separators=(",", ":")),
        }
        connection.connection.cursor().execute(_PG_WRITE_ENTRIES, params)
    else:
        connection.execute(_INSERT_ENTRIES, rows)
        connection.execute(_UPDATE_HEAD, {"new_last_id": rows[-1]["id"], "new_last_hash": rows[-1]["hash"]})
    return rows


def append_chained(connection: Connection, entries: Sequence[NewEntry], *, at_commit: bool = False) -> None:
    """Chain these entries like `append_many`, the hashing done by PostgreSQL in one statement.

    The head is locked by that statement alone, so with `at_commit` it is held only while
    the server runs it and commits: no round trip to us in between (the statement rides with
    the COMMIT when the transaction allows it, see `db.send_with_commit`; a later append in
    the same transaction still sees it). Other databases get `append_many`.
    """
    if not entries:
        return
    if connection.dialect.name != "postgresql":
        append_many(connection, entries)
        return
    created_at = utcnow()
    created = _created_text(created_at)
    _send_rendered(connection, [_rendered(entry, created) for entry in entries], created_at, at_commit)


def _send_rendered(connection: Connection, entries: Sequence[RenderedEntry], created_at: datetime,
                   at_commit: bool) -> None:
    """PostgreSQL: `_PG_APPEND_CHAINED` for these entries (with `at_commit`, sent with the COMMIT
    when the transaction allows). Their JSON is written here, each details text as it is."""
    from psycopg.types.json import Jsonb  # here: on SQLite, psycopg is never loaded

    given = ",".join(f'{{"n":{n},"actor":{json_value(e.actor)},"action":{json_value(e.action)},'
                     f'"subject":{json_value(e.subject)},"details":{e.details}}}'
                     for n, e in enumerate(entries, start=1))
    # The bodies as arrays (jsonb: dumped in C): each step of the chain reads its own by position.
    params = {"created_at": created_at, "entries": f"[{given}]",
              "body_heads": Jsonb([e.body_head for e in entries]), "body_tails": Jsonb([e.body_tail for e in entries])}
    if not (at_commit and send_with_commit(connection, _PG_APPEND_CHAINED, params)):
        send_pending(connection)
        connection.connection.cursor().execute(_PG_APPEND_CHAINED, params)


@dataclass(frozen=True, slots=True)
class RenderedEntry:
    """An entry its writer rendered already (a database can, for thousands at once): the
    canonical JSON of its details and `entry_hash`'s canonical JSON of the whole entry, for
    the time it is appended at, as the text before and after its id (see `rendered`)."""

    actor: str
    action: str
    subject: str
    details: str
    body_head: str
    body_tail: str


def rendered(entry: NewEntry, created_at: datetime) -> RenderedEntry:
    """`entry` rendered for `append_rendered` at `created_at` (also a template to render others by)."""
    return _rendered(entry, _created_text(created_at))


def _rendered(entry: NewEntry, created: str) -> RenderedEntry:
    """`rendered`, the time given as `_created_text` of it (one text for all the entries of an append)."""
    details = _canonical_details(entry.details or {})
    head, tail = _body_around_id(created, entry, details)
    return RenderedEntry(entry.actor, entry.action, entry.subject, details, head, tail)


def append_rendered(connection: Connection, entries: Sequence[RenderedEntry], created_at: datetime) -> None:
    """Chain entries rendered for `created_at`, in order, like `append_chained` (PostgreSQL
    hashes them); no entry is built, encoded or parsed here, what costs most by the thousand."""
    if not entries:
        return
    if connection.dialect.name == "postgresql":
        _send_rendered(connection, entries, created_at, at_commit=False)
        return
    last_id, last_hash = _lock_head(connection)
    column_type = AuditEntry.__table__.c.created_at.type.dialect_impl(connection.dialect)
    stored_at = column_type.bind_processor(connection.dialect)(created_at)
    rows = []
    for entry in entries:
        last_id += 1
        digest = hashlib.sha256(f"{last_hash}{entry.body_head}{last_id}{entry.body_tail}".encode()).hexdigest()
        rows.append((last_id, stored_at, entry.actor, entry.action, entry.subject, entry.details, last_hash, digest))
        last_hash = digest
    connection.exec_driver_sql("INSERT INTO audit_log (id, created_at, actor, action, subject, details, prev_hash,"
                               " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.execute(_UPDATE_HEAD, {"new_last_id": last_id, "new_last_hash": last_hash})


def _body_around_id(created: str, entry: NewEntry, details: str) -> tuple[str, str]:
    """`entry_hash`'s canonical JSON of an entry made at `created` (`_created_text`) whose details'
    canonical JSON is `details`, as the text before and after its id.

    Written out rather than dumped whole: keys sort as action, actor, created_at, details, id,
    subject, and a dict nested in canonical JSON is written as it would be alone.
    """
    head = (f'{{"action":{_canonical_text(entry.action)},"actor":{_canonical_text(entry.actor)},'
            f'"created_at":{created},"details":{details},"id":')
    return head, f',"subject":{_canonical_text(entry.subject)}}}'


def _created_text(created_at: datetime) -> str:
    """`entry_hash`'s canonical JSON of an entry's time."""
    return _canonical_text(created_at.astimezone(UTC).isoformat(timespec="microseconds"))


def _canonical_details(details: Any) -> str:
    """The canonical JSON of `details` as the database gives them back (`json.loads` of it).

    A flat dict with text keys is that already; any other is read back and written again,
    since JSON turns every key into text (and text keys sort differently from numbers).
    """
    text = canonical_json(details)
    if isinstance(details, dict) and all(type(key) is str and not isinstance(value, (dict, list, tuple))
                                         for key, value in details.items()):
        return text
    return canonical_json(json.loads(text))


def _canonical_text(value: Any) -> str:
    """`canonical_json` of a value, fast for text (what an entry's actor, action and subject are)."""
    return _encode_unicode(value) if type(value) is str else canonical_json(value)


def _lock_head(connection: Connection) -> tuple[int, str]:
    """Lock the chain's head until commit; its (last_id, last_hash). Take it after every other lock."""
    if connection.dialect.name == "postgresql":
        send_pending(connection)  # an entry waiting for the commit moves the head first
        cursor = connection.connection.cursor()
        cursor.execute(_PG_LOCK_HEAD)
        return cursor.fetchone()
    return tuple(connection.execute(_LOCK_HEAD).one())


def _chain(entries: Sequence[NewEntry], last_id: int, last_hash: str, created_at: datetime) -> list[dict]:
    rows = []
    for entry in entries:
        details = json.loads(canonical_json(entry.details or {}))  # exactly what the database returns
        last_id += 1
        digest = entry_hash(last_hash, id=last_id, created_at=created_at, actor=entry.actor,
                            action=entry.action, subject=entry.subject, details=details)
        rows.append({"id": last_id, "created_at": created_at, "actor": entry.actor, "action": entry.action,
                     "subject": entry.subject, "details": details, "prev_hash": last_hash, "hash": digest})
        last_hash = digest
    return rows

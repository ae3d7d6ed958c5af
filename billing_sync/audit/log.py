"""Appending to the audit chain inside the caller's transaction.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
JSON. Writers serialise on the single `audit_chain_head` row (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite writers are serialised by `BEGIN IMMEDIATE`), so concurrent
transactions can never chain two entries to the same predecessor. The lock is held until
the caller commits: append audit entries last in a unit of work.

Entries appended together cost one lock, one insert and one head update however many
there are; on PostgreSQL the insert and the update are one statement, sent straight to
the driver (ingest appends an entry for every charge, inside the lock every writer queues on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

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
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        cursor = connection.connection.cursor()
        cursor.execute(_PG_LOCK_HEAD)
        last_id, last_hash = cursor.fetchone()
    else:
        last_id, last_hash = connection.execute(_LOCK_HEAD).one()
    rows = _chain(entries, last_id, last_hash, utcnow())
    if postgres:
        cursor.execute(_PG_WRITE_ENTRIES, {
            "created_at": rows[0]["created_at"], "last_id": rows[-1]["id"], "last_hash": rows[-1]["hash"],
            "entries": json.dumps([{k: v for k, v in row.items() if k != "created_at"} for row in rows],
                                  separators=(",", ":")),
        })
    else:
        connection.execute(_INSERT_ENTRIES, rows)
        connection.execute(_UPDATE_HEAD, {"new_last_id": rows[-1]["id"], "new_last_hash": rows[-1]["hash"]})
    return rows


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

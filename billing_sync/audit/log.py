"""Appending to the audit chain inside the caller's transaction.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
JSON. Writers serialise on the single `audit_chain_head` row (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite writers are serialised by `BEGIN IMMEDIATE`), so concurrent
transactions can never chain two entries to the same predecessor. The lock is held until
the caller commits: append audit entries last in a unit of work.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from ..models import AuditChainHead, AuditEntry, utcnow

GENESIS_HASH = "0" * 64


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
    details = json.loads(canonical_json(details or {}))  # exactly what the database returns
    head = session.execute(
        select(AuditChainHead.last_id, AuditChainHead.last_hash)
        .where(AuditChainHead.id == 1)
        .with_for_update()
    ).one()
    created_at = utcnow()
    entry_id = head.last_id + 1
    digest = entry_hash(
        head.last_hash, id=entry_id, created_at=created_at, actor=actor, action=action,
        subject=subject, details=details,
    )
    values = dict(
        id=entry_id, created_at=created_at, actor=actor, action=action, subject=subject,
        details=details, prev_hash=head.last_hash, hash=digest,
    )
    session.execute(insert(AuditEntry).values(**values))
    session.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1).values(last_id=entry_id, last_hash=digest)
    )
    return AuditEntry(**values)

"""Idempotency keys: a retried start or switch gets the first outcome and plays nothing new.

`claim` reserves the key for this caller before anything goes to Genesys Cloud, in its own
short transaction, so two concurrent retries cannot both play. The work then ends in one
of three ways:

- `settle(connection, claim, outcome)` in the same transaction as the work's own writes:
  the outcome is stored and every retry gets it;
- `release(db, claim)` when Genesys Cloud certainly did nothing (refused, rate-limited,
  unknown conversation): the key is free again, so a retry really retries;
- a crash in between leaves the key reserved; a retry is told the request is in flight
  until the reservation is older than STALE_AFTER, then may try again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..db import Database
from ..models import IdempotencyRecord, utcnow
from .errors import IdempotencyKeyInFlight, IdempotencyKeyReused

# A reservation never settled (the process died mid-request) stops blocking retries after this.
STALE_AFTER = timedelta(minutes=5)
# Keys are remembered this long; after it the same key starts a new request.
RETAIN = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Claim:
    """A key reserved for one request, or (`replay` set) the outcome of its first use."""

    record_id: int
    replay: dict[str, Any] | None = None


def fingerprint(action: str, **request: Any) -> str:
    """SHA-256 of what was asked: the same key with a different request is refused."""
    body = json.dumps({"action": action, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def claim(db: Database, *, api_key_id: int, key: str, request_fingerprint: str) -> Claim:
    """Reserve `key` for this caller, or the stored outcome of its first use.

    Raises IdempotencyKeyReused (a different request used it) or IdempotencyKeyInFlight.
    """
    now = utcnow()
    for _ in range(2):
        try:
            with db.transaction() as connection:
                row = connection.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
                    ).with_for_update()
                ).one_or_none()
                if row is None:
                    record_id = connection.execute(
                        insert(IdempotencyRecord).values(
                            api_key_id=api_key_id, key=key, fingerprint=request_fingerprint, created_at=now,
                        ).returning(IdempotencyRecord.id)
                    ).scalar_one()
                    return Claim(record_id)
                if now - row.created_at > RETAIN or (row.outcome is None and now - row.created_at > STALE_AFTER):
                    connection.execute(
                        update(IdempotencyRecord).where(IdempotencyRecord.id == row.id).values(
                            fingerprint=request_fingerprint, outcome=None, created_at=now, completed_at=None,
                        )
                    )
                    return Claim(row.id)
                if row.fingerprint != request_fingerprint:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used for a different request; use a new key for a new request"
                    )
                if row.outcome is None:
                    raise IdempotencyKeyInFlight(
                        "A request with this Idempotency-Key is still being carried out; retry shortly"
                    )
                return Claim(row.id, replay=row.outcome)
        except IntegrityError:
            continue  # PostgreSQL: a concurrent first use inserted it; read theirs
    raise IdempotencyKeyInFlight("A request with this Idempotency-Key is still being carried out; retry shortly")


def settle(connection: Connection, claim: Claim, outcome: dict[str, Any]) -> None:
    """Store the outcome in the caller's transaction: every retry gets it from now on."""
    connection.execute(
        update(IdempotencyRecord).where(IdempotencyRecord.id == claim.record_id)
        .values(outcome=outcome, completed_at=utcnow())
    )


def release(db: Database, claim: Claim) -> None:
    """Forget the reservation: nothing happened, so a retry may do the work."""
    with db.transaction() as connection:
        connection.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.id == claim.record_id, IdempotencyRecord.outcome.is_(None)
            )
        )

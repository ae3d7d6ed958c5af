"""The outbox: claiming due messages under a lease, settling attempts, releasing, replaying dead ones.

A claim takes due, unleased `pending` rows and stamps them with the dispatcher's name and
a lease. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so any number of dispatchers
share the rows without waiting on each other; a dispatcher that dies keeps its rows only
until the lease runs out. SQLite allows one dispatcher per database (`exclusive_dispatcher`),
which reclaims whatever a crashed predecessor held as it starts. Every settle and release is
guarded by the lease owner, so a dispatcher whose lease expired can never overwrite the
work of the one that took the row over.
"""

from __future__ import annotations

import fcntl
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, select, update

from .. import audit
from ..models import OutboxMessage, utcnow
from .attempt_counts import add_attempts, answer_class
from .retry import RetryPolicy

MAX_ERROR_CHARS = 1024
# A retry decision leaves the message pending; the attempt itself counts as a retry.
_OUTCOME = {"delivered": "delivered", "pending": "retry", "dead": "dead"}


@dataclass(frozen=True, slots=True)
class Message:
    """A claimed outbox row: what to send and how many attempts it already had."""

    id: int
    record_id: int
    message_id: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to deliver a message: the HTTP status, or the error when no answer came."""

    message: Message
    status: int | None
    error: str | None = None
    retry_after_s: float | None = None


class DispatcherBusy(Exception):
    """Another dispatcher already works on this SQLite database."""


class ReplayError(Exception):
    """A replay that cannot be done; `status` says why (404 unknown, 409 not dead)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def claim_due_messages(connection: Connection, *, owner: str, limit: int, lease_s: float,
                       now: datetime | None = None) -> list[Message]:
    """Lease up to `limit` due messages to `owner`, oldest due first."""
    now = now or utcnow()
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
               (OutboxMessage.leased_until.is_(None)) | (OutboxMessage.leased_until <= now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, leased_until=now + timedelta(seconds=lease_s), updated_at=now)
        .returning(OutboxMessage.id, OutboxMessage.record_id, OutboxMessage.message_id,
                   OutboxMessage.payload, OutboxMessage.attempts)
    )
    return sorted((Message(*row) for row in claimed), key=lambda m: m.id)


def settle_attempts(connection: Connection, attempts: list[Attempt], *, owner: str, policy: RetryPolicy,
                    actor: str, now: datetime | None = None) -> dict[str, int]:
    """Record what each attempt achieved: delivered, retry later, or dead; audit the outcomes.

    Delivered rows are one UPDATE, retries one executemany, dead rows (rare) one each. Rows whose lease
    `owner` no longer holds are left alone. Returns how many rows went each way.
    """
    now = now or utcnow()
    delivered, dead, retries = [], [], []
    outcomes: Counter[tuple[str, str]] = Counter()
    for attempt in attempts:
        count = attempt.message.attempts + 1
        decision = policy.decide(status=attempt.status, attempts=count, retry_after_s=attempt.retry_after_s)
        outcomes[_OUTCOME[decision.status], answer_class(attempt.status)] += 1
        if decision.status == "delivered":
            delivered.append(attempt)
        elif decision.status == "dead":
            dead.append(attempt)
        else:
            retries.append((attempt, now + timedelta(seconds=decision.delay_s)))
    if retries:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == bindparam("b_id"), OutboxMessage.lease_owner == owner)
            .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=bindparam("b_next"),
                    last_status=bindparam("b_status"), last_error=bindparam("b_error"),
                    lease_owner=None, leased_until=None, updated_at=now),
            [{"b_id": a.message.id, "b_next": when, "b_status": a.status, "b_error": _error(a)}
             for a, when in retries],
        )
    done = _mark_delivered(connection, delivered, owner=owner, now=now) if delivered else set()
    gone = [attempt for attempt in dead if _mark_dead(connection, attempt, owner=owner, now=now)]
    # Audit last (it locks the chain head until commit): one entry per batch delivered, one per death.
    if done:
        audit.append(connection, actor=actor, action="billing.delivered", subject="outbox",
                     details={"record_ids": sorted(done)})
    for attempt in gone:
        audit.append(connection, actor=actor, action="billing.dead",
                     subject=f"billing_record:{attempt.message.record_id}",
                     details={"outbox_id": attempt.message.id, "webhook_id": attempt.message.message_id,
                              "attempts": attempt.message.attempts + 1, "last_status": attempt.status,
                              "last_error": _error(attempt)})
    # Every POST made counts, even one whose lease was lost meanwhile: it reached the billing system.
    add_attempts(connection, outcomes)
    return {"delivered": len(done), "dead": len(gone), "retry": len(retries)}


def _mark_delivered(connection: Connection, attempts: list[Attempt], *, owner: str, now: datetime) -> set[int]:
    """One UPDATE per answering status (200, 201, ...); the record ids of the rows moved."""
    by_status: dict[int | None, list[int]] = {}
    for attempt in attempts:
        by_status.setdefault(attempt.status, []).append(attempt.message.id)
    moved: set[int] = set()
    for answer, ids in by_status.items():
        rows = connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.lease_owner == owner)
            .values(status="delivered", attempts=OutboxMessage.attempts + 1, last_status=answer,
                    last_error=None, delivered_at=now, lease_owner=None, leased_until=None, updated_at=now)
            .returning(OutboxMessage.record_id)
        )
        moved.update(rows.scalars())
    return moved


def _mark_dead(connection: Connection, attempt: Attempt, *, owner: str, now: datetime) -> bool:
    """Dead is rare: one UPDATE per row, keeping its own last status and error."""
    moved = connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == attempt.message.id, OutboxMessage.lease_owner == owner)
        .values(status="dead", attempts=OutboxMessage.attempts + 1, last_status=attempt.status,
                last_error=_error(attempt), lease_owner=None, leased_until=None, updated_at=now)
        .returning(OutboxMessage.id)
    ).first()
    return moved is not None


def _error(attempt: Attempt) -> str | None:
    if attempt.error is None and attempt.status is not None:
        return None if 200 <= attempt.status < 300 else f"HTTP {attempt.status}"
    return (attempt.error or "")[:MAX_ERROR_CHARS]


def release(connection: Connection, *, owner: str, ids: list[int] | None = None) -> int:
    """Give back leased rows not attempted (all of `owner`'s when `ids` is None)."""
    statement = update(OutboxMessage).where(OutboxMessage.lease_owner == owner)
    if ids is not None:
        if not ids:
            return 0
        statement = statement.where(OutboxMessage.id.in_(ids))
    return connection.execute(statement.values(lease_owner=None, leased_until=None)).rowcount


def release_stale_leases(connection: Connection) -> int:
    """SQLite at start-up: the only dispatcher takes back every lease (its holder is dead)."""
    return connection.execute(
        update(OutboxMessage).where(OutboxMessage.lease_owner.is_not(None))
        .values(lease_owner=None, leased_until=None)
    ).rowcount


def replay_dead(connection: Connection, *, actor: str, ids: list[int] | None = None,
                since: datetime | None = None) -> list[int]:
    """Put dead messages back in the queue with a fresh schedule; audit each. Returns outbox ids.

    `ids` picks messages (each must exist and be dead: ReplayError otherwise); `since`
    picks every message that died at or after it; neither picks every dead message.
    """
    query = select(OutboxMessage).where(OutboxMessage.status == "dead").order_by(OutboxMessage.id)
    if ids is not None:
        _check_replayable(connection, ids)
        query = query.where(OutboxMessage.id.in_(ids))
    if since is not None:
        query = query.where(OutboxMessage.updated_at >= since)
    rows = connection.execute(query.with_for_update()).all()
    if not rows:
        return []
    now = utcnow()
    connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([row.id for row in rows]), OutboxMessage.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=now, lease_owner=None, leased_until=None,
                updated_at=now)
    )
    for row in rows:
        audit.append(connection, actor=actor, action="billing.replayed", subject=f"billing_record:{row.record_id}",
                     details={"outbox_id": row.id, "webhook_id": row.message_id, "attempts_before": row.attempts,
                              "last_status": row.last_status, "last_error": row.last_error})
    return [row.id for row in rows]


def _check_replayable(connection: Connection, ids: list[int]) -> None:
    found = dict(connection.execute(
        select(OutboxMessage.id, OutboxMessage.status).where(OutboxMessage.id.in_(ids))
    ).all())
    for outbox_id in ids:
        if outbox_id not in found:
            raise ReplayError(404, f"No outbox message {outbox_id}")
        if found[outbox_id] != "dead":
            raise ReplayError(409, f"Outbox message {outbox_id} is {found[outbox_id]}, not dead: nothing to replay")


@contextmanager
def exclusive_dispatcher(engine: Engine) -> Iterator[None]:
    """On SQLite, hold the one-dispatcher-per-database lock (DispatcherBusy if taken); else nothing."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        yield
        return
    path = Path(f"{engine.url.database}.dispatcher-lock")
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DispatcherBusy(f"another dispatcher is running on {engine.url.database}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

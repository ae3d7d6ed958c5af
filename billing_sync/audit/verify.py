"""Walking the audit chain to prove nothing in it was altered, removed or reordered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditChainHead, AuditEntry
from .log import GENESIS_HASH, entry_hash

BATCH = 5000
PROGRESS_EVERY = 1000


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    verified: int
    head: str
    broken_id: int | None = None
    expected: str | None = None
    found: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def verify_chain(session: Session, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Recompute every hash in order; report the first broken link or the verified head.

    `progress(n)` is told every so often how many more entries were checked.
    """
    prev_hash, expected_id, count = GENESIS_HASH, 1, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=BATCH))
    for entry in rows.scalars():
        if entry.id != expected_id:
            return _broken(count, prev_hash, expected_id, str(expected_id), str(entry.id), "gap in ids")
        if entry.prev_hash != prev_hash:
            return _broken(count, prev_hash, entry.id, prev_hash, entry.prev_hash, "prev_hash mismatch")
        digest = entry_hash(
            prev_hash, id=entry.id, created_at=entry.created_at, actor=entry.actor,
            action=entry.action, subject=entry.subject, details=entry.details,
        )
        if digest != entry.hash:
            return _broken(count, prev_hash, entry.id, digest, entry.hash, "hash mismatch")
        prev_hash, expected_id, count = entry.hash, expected_id + 1, count + 1
        if progress and count % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress:
        progress(count % PROGRESS_EVERY)
    head = session.execute(select(AuditChainHead).where(AuditChainHead.id == 1)).scalar_one()
    if head.last_id != count or head.last_hash != prev_hash:
        return _broken(count, prev_hash, head.last_id, prev_hash, head.last_hash, "head does not match chain")
    return ChainReport(ok=True, verified=count, head=prev_hash)


def _broken(count, head, broken_id, expected, found, reason) -> ChainReport:
    return ChainReport(
        ok=False, verified=count, head=head, broken_id=broken_id, expected=expected,
        found=found, reason=reason,
    )

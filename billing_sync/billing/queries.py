"""Reading billing records and the outbox, a page at a time (keyset on the row id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ledger.queries import Page
from ..ledger.records import record_json
from ..models import BillingRecord, OutboxMessage


def list_records(
    session: Session, *, after_id: int | None, limit: int, playback_id: str | None = None,
    conversation_id: str | None = None, kind: str | None = None, since: datetime | None = None,
    until: datetime | None = None,
) -> Page:
    """Billing records in creation order, filtered; each exactly as the billing webhook carries it."""
    query = select(BillingRecord).order_by(BillingRecord.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(BillingRecord.id > after_id)
    for column, value in ((BillingRecord.playback_id, playback_id),
                          (BillingRecord.conversation_id, conversation_id), (BillingRecord.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(BillingRecord.created_at >= since)
    if until is not None:
        query = query.where(BillingRecord.created_at < until)
    return _page(list(session.scalars(query)), limit, record_json)


def list_outbox(session: Session, *, after_id: int | None, limit: int, status: str | None = None) -> Page:
    """Outbox messages in creation order, optionally of one status."""
    query = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(OutboxMessage.id > after_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return _page(list(session.scalars(query)), limit, outbox_json)


def outbox_json(row: OutboxMessage) -> dict:
    return {
        "id": row.id,
        "record_id": row.record_id,
        "webhook_id": row.message_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
        "created_at": row.created_at,
    }


def _page(rows: list, limit: int, view) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[view(row) for row in rows], last_id=rows[-1].id if rows else None, more=more)

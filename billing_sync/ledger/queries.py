"""Reading the ledger: playbacks with their events, a page at a time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Playback, PlaybackEvent


@dataclass(slots=True)
class Page:
    """One page of a keyset-paged list: its items, the last row id, and whether more follow."""

    items: list[dict]
    last_id: int | None
    more: bool


def list_playbacks(
    session: Session, *, after_id: int | None, limit: int, conversation_id: str | None = None,
    state: str | None = None, since: datetime | None = None, until: datetime | None = None,
) -> Page:
    """One page of playbacks in ledger order (keyset on the row id), each with its events."""
    query = select(Playback).order_by(Playback.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(Playback.id > after_id)
    if conversation_id is not None:
        query = query.where(Playback.conversation_id == conversation_id)
    if state is not None:
        query = query.where(Playback.state == state)
    if since is not None:
        query = query.where(Playback.started_at >= since)
    if until is not None:
        query = query.where(Playback.started_at < until)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    events = _events_of(session, [row.playback_id for row in rows])
    items = [_as_dict(row, events[row.playback_id]) for row in rows]
    return Page(items=items, last_id=rows[-1].id if rows else None, more=more)


def get_playback(session: Session, playback_id: str) -> dict | None:
    row = session.scalars(select(Playback).where(Playback.playback_id == playback_id)).one_or_none()
    if row is None:
        return None
    return _as_dict(row, _events_of(session, [playback_id])[playback_id])


def _events_of(session: Session, playback_ids: list[str]) -> dict[str, list[PlaybackEvent]]:
    events: dict[str, list[PlaybackEvent]] = defaultdict(list)
    if playback_ids:
        query = (
            select(PlaybackEvent)
            .where(PlaybackEvent.playback_id.in_(playback_ids))
            .order_by(PlaybackEvent.playback_id, PlaybackEvent.sequence, PlaybackEvent.id)
        )
        for event in session.scalars(query):
            events[event.playback_id].append(event)
    return events


def _as_dict(row: Playback, events: list[PlaybackEvent]) -> dict:
    return {
        "playback_id": row.playback_id,
        "conversation_id": row.conversation_id,
        "state": row.state,
        "duration_ms": row.duration_ms,
        "media_url": row.media_url,
        "requested_by": row.requested_by,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "events": events,
    }

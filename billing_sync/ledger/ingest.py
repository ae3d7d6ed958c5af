"""Recording received events in the ledger, once each, and moving playbacks along.

`record_events` is one unit of work's worth of SQL, set-based so a batch of 500 costs a
handful of statements:

1. insert every event, skipping the ones already known (unique on source + id);
2. insert the playbacks seen for the first time, already folded from their events;
3. lock the playbacks that existed (in id order, so concurrent batches cannot deadlock),
   fold the new events into them, update the ones that changed;
4. audit every conflicting terminal event.

The caller commits. Nothing is acknowledged to the sender before that commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .. import audit
from ..models import Playback, PlaybackEvent, utcnow
from .events import ReceivedEvent
from .state import Conflict, PlaybackState, apply_events


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    # Playbacks that reached a terminal state in this unit of work (billing keys off these).
    ended: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def insert_ignoring_conflicts(session: Session, model):
    """`INSERT ... ON CONFLICT DO NOTHING` for this session's dialect."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing()


def record_events(session: Session, received: list[ReceivedEvent], *, source: str) -> IngestResult:
    """Write the events not yet in the ledger and fold them into their playbacks."""
    unique = _unique_by_id(received)
    result = IngestResult(duplicates=len(received) - len(unique))
    new = _insert_events(session, unique, source)
    result.accepted = len(new)
    result.duplicates += len(unique) - len(new)
    if new:
        _fold_into_playbacks(session, new, result)
        for conflict in result.conflicts:
            _audit_conflict(session, conflict, source)
    return result


def _unique_by_id(received: list[ReceivedEvent]) -> list[ReceivedEvent]:
    seen: dict[str, ReceivedEvent] = {}
    for item in received:
        seen.setdefault(item.source_event_id, item)
    # Sorted: concurrent batches insert keys in one order, so they cannot deadlock.
    return sorted(seen.values(), key=lambda item: item.source_event_id)


def _insert_events(session: Session, items: list[ReceivedEvent], source: str) -> list[ReceivedEvent]:
    if not items:
        return []
    received_at = utcnow()
    rows = [
        {
            "source": source,
            "source_event_id": item.source_event_id,
            "playback_id": item.event.playback_id,
            "conversation_id": item.event.conversation_id,
            "state": item.event.state,
            "duration_ms": item.event.duration_ms,
            "sequence": item.event.sequence,
            "media_url": item.event.media_url,
            "occurred_at": item.event.occurred_at,
            "received_at": received_at,
            "payload": item.payload,
        }
        for item in items
    ]
    statement = insert_ignoring_conflicts(session, PlaybackEvent).returning(
        PlaybackEvent.source_event_id
    )
    inserted = set(session.scalars(statement, rows))
    return [item for item in items if item.source_event_id in inserted]


def _fold_into_playbacks(session: Session, new: list[ReceivedEvent], result: IngestResult) -> None:
    by_playback: dict[str, list[ReceivedEvent]] = defaultdict(list)
    for item in new:
        by_playback[item.event.playback_id].append(item)
    created = _insert_new_playbacks(session, by_playback, result)
    existing = sorted(set(by_playback) - created)
    if not existing:
        return
    rows = session.scalars(
        select(Playback).where(Playback.playback_id.in_(existing)).order_by(Playback.id).with_for_update()
    )
    now = utcnow()
    for playback in rows:
        current = _state_of(playback)
        outcome = apply_events(current, _pairs(by_playback[playback.playback_id]))
        result.conflicts.extend(outcome.conflicts)
        if outcome.became_terminal:
            result.ended.append(playback.playback_id)
        if outcome.state != current:
            session.execute(
                update(Playback)
                .where(Playback.id == playback.id)
                .values(**_columns(outcome.state), updated_at=now)
            )


def _insert_new_playbacks(
    session: Session, by_playback: dict[str, list[ReceivedEvent]], result: IngestResult
) -> set[str]:
    """Insert playbacks not seen before, folded from their events; return those inserted."""
    now = utcnow()
    outcomes, rows = {}, []
    for playback_id in sorted(by_playback):
        items = by_playback[playback_id]
        outcome = apply_events(None, _pairs(items))
        outcomes[playback_id] = outcome
        rows.append({
            "playback_id": playback_id,
            "conversation_id": items[0].event.conversation_id,
            **_columns(outcome.state),
            "created_at": now,
            "updated_at": now,
        })
    statement = insert_ignoring_conflicts(session, Playback).returning(Playback.playback_id)
    created = set(session.scalars(statement, rows))
    for playback_id in sorted(created):
        outcome = outcomes[playback_id]
        result.conflicts.extend(outcome.conflicts)
        if outcome.became_terminal:
            result.ended.append(playback_id)
    return created


def _pairs(items: list[ReceivedEvent]):
    return [(item.source_event_id, item.event) for item in items]


def _state_of(playback: Playback) -> PlaybackState:
    return PlaybackState(
        state=playback.state,
        last_sequence=playback.last_sequence,
        duration_ms=playback.duration_ms,
        media_url=playback.media_url,
        started_at=playback.started_at,
        ended_at=playback.ended_at,
    )


def _columns(state: PlaybackState) -> dict:
    return {
        "state": state.state,
        "last_sequence": state.last_sequence,
        "duration_ms": state.duration_ms,
        "media_url": state.media_url,
        "started_at": state.started_at,
        "ended_at": state.ended_at,
    }


def _audit_conflict(session: Session, conflict: Conflict, source: str) -> None:
    event = conflict.event
    audit.append(
        session,
        actor=f"genesys:{source}",
        action="playback.terminal_conflict",
        subject=f"playback:{event.playback_id}",
        details={
            "conversation_id": event.conversation_id,
            "applied": {"state": conflict.applied.state, "duration_ms": conflict.applied.duration_ms},
            "conflicting": {
                "event_id": conflict.source_event_id,
                "state": event.state,
                "duration_ms": event.duration_ms,
                "sequence": event.sequence,
            },
        },
    )

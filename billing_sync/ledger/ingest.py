"""Recording received events in the ledger, once each, and moving playbacks along.

`record_events` is one unit of work's worth of SQL, set-based so a batch of 500 costs a
handful of statements (see `bulk`):

1. insert every event not already known (unique on source + source event id) and the
   playbacks seen for the first time, already folded from their events (one statement
   on PostgreSQL);
2. lock the playbacks that existed (in id order, so concurrent batches cannot deadlock),
   fold the new events into them, write the ones that changed;
3. audit every conflicting terminal event;
4. with a tariff, charge the playbacks that became completed or stopped from a webhook, or
   whose first webhook terminal event follows the stream's (records and outbox rows
   set-based, one audit entry per charge, last: see `records`).

The caller commits. Nothing is acknowledged to the sender before that commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from .. import audit
from ..models import Playback, PlaybackEvent, utcnow
from . import bulk
from .events import TERMINAL_STATES, ReceivedEvent
from .rating import Tariff
from .records import Ended, charge_ended
from .state import Conflict, Outcome, PlaybackState, apply_events


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    # The source event ids this unit of work wrote (the rest were already known).
    inserted: set[str] = field(default_factory=set)
    # Playbacks that reached a terminal state in this unit of work (billing keys off these).
    ended: list[Ended] = field(default_factory=list)
    # Billing records this unit of work wrote.
    charged: list[int] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


# Only the webhook charges at once; other sources' terminal states are reconciliation's to bill.
CHARGING_SOURCES = frozenset({"webhook"})


def record_events(
    connection: Connection, received: list[ReceivedEvent], *, source: str, tariff: Tariff | None = None
) -> IngestResult:
    """Write the events not yet in the ledger, fold them into their playbacks, charge what ended."""
    unique = _unique_by_id(received)
    by_playback: dict[str, list[ReceivedEvent]] = defaultdict(list)
    for item in unique:
        by_playback[item.event.playback_id].append(item)
    # Folded as if every playback were new; used only for those that turn out to be.
    folded = {pid: apply_events(None, _pairs(items)) for pid, items in sorted(by_playback.items())}
    now = utcnow()
    inserted, created = bulk.insert_new(
        connection,
        [_event_row(item) for item in unique],
        [_playback_row(pid, by_playback[pid][0], outcome.state) for pid, outcome in folded.items()],
        source=source,
        now=now,
    )
    result = IngestResult(accepted=len(inserted), duplicates=len(received) - len(inserted), inserted=inserted)
    for playback_id in sorted(created):
        _collect(result, playback_id, by_playback[playback_id][0].event.conversation_id, folded[playback_id], source)
    existing = {
        pid: new for pid, items in by_playback.items()
        if pid not in created and (new := [item for item in items if item.source_event_id in inserted])
    }
    if existing:
        _fold_into_existing(connection, existing, result, now, source)
    for conflict in result.conflicts:
        _audit_conflict(connection, conflict, source)
    if tariff is not None and source in CHARGING_SOURCES and result.ended:
        result.charged = charge_ended(connection, result.ended, tariff, actor=f"genesys:{source}")
    return result


def _unique_by_id(received: list[ReceivedEvent]) -> list[ReceivedEvent]:
    seen: dict[str, ReceivedEvent] = {}
    for item in received:
        seen.setdefault(item.source_event_id, item)
    # Sorted: concurrent batches insert keys in one order, so they cannot deadlock.
    return sorted(seen.values(), key=lambda item: item.source_event_id)


def _event_row(item: ReceivedEvent) -> dict:
    event = item.event
    return {
        "source_event_id": item.source_event_id,
        "playback_id": event.playback_id,
        "conversation_id": event.conversation_id,
        "state": event.state,
        "duration_ms": event.duration_ms,
        "sequence": event.sequence,
        "media_url": event.media_url,
        "occurred_at": event.occurred_at,
        "payload": item.payload,
    }


def _playback_row(playback_id: str, first: ReceivedEvent, state: PlaybackState) -> dict:
    return {"playback_id": playback_id, "conversation_id": first.event.conversation_id, **_columns(state)}


def _fold_into_existing(
    connection: Connection, new: dict[str, list[ReceivedEvent]], result: IngestResult, now, source: str
) -> None:
    """Lock the playbacks (in id order: no deadlocks), fold the new events in, write changes."""
    locked = connection.execute(
        select(Playback.id, Playback.playback_id, Playback.conversation_id, *[getattr(Playback, c) for c in bulk.PLAYBACK_STATE_COLUMNS])
        .where(Playback.playback_id.in_(sorted(new)))
        .order_by(Playback.id)
        .with_for_update()
    )
    changed = []
    late = []
    for row in locked:
        current = PlaybackState(**{c: getattr(row, c) for c in bulk.PLAYBACK_STATE_COLUMNS})
        outcome = apply_events(current, _pairs(new[row.playback_id]))
        _collect(result, row.playback_id, row.conversation_id, outcome, source)
        if current.terminal and source in CHARGING_SOURCES:
            late.append((row.playback_id, row.conversation_id, new[row.playback_id]))
        if outcome.state != current:
            changed.append({"id": row.id, **_columns(outcome.state)})
    bulk.update_playbacks(connection, changed, now=now)
    if late:
        _collect_late_terminals(connection, result, late, source)


def _collect(result: IngestResult, playback_id: str, conversation_id: str, outcome: Outcome, source: str) -> None:
    result.conflicts.extend(outcome.conflicts)
    if outcome.became_terminal:
        state = outcome.state
        result.ended.append(Ended(playback_id, conversation_id, state.state, state.duration_ms, state.ended_at, source))


def _collect_late_terminals(connection: Connection, result: IngestResult, late: list, source: str) -> None:
    """A charging source's first terminal events for playbacks another source already ended.

    The stream may report the end first; the webhook's terminal event must still charge,
    with the webhook's own facts, when it is the first terminal event the webhook sent
    (a later, conflicting one never charges). The charge's key is per playback either way.
    """
    firsts = {}
    for playback_id, conversation_id, items in late:
        terminal = sorted((i for i in items if i.event.terminal), key=lambda i: (i.event.sequence, i.source_event_id))
        if terminal:
            firsts[playback_id] = (conversation_id, terminal)
    if not firsts:
        return
    known = connection.execute(
        select(PlaybackEvent.playback_id, func.count())
        .where(PlaybackEvent.source == source, PlaybackEvent.playback_id.in_(sorted(firsts)),
               PlaybackEvent.state.in_(TERMINAL_STATES))
        .group_by(PlaybackEvent.playback_id)
    )
    for playback_id, count in known:
        conversation_id, terminal = firsts[playback_id]
        if count == len(terminal):
            event = terminal[0].event
            result.ended.append(Ended(playback_id, conversation_id, event.state, event.duration_ms,
                                      event.occurred_at, source))


def _pairs(items: list[ReceivedEvent]):
    return [(item.source_event_id, item.event) for item in items]


def _columns(state: PlaybackState) -> dict:
    return {name: getattr(state, name) for name in bulk.PLAYBACK_STATE_COLUMNS}


def _audit_conflict(connection: Connection, conflict: Conflict, source: str) -> None:
    event = conflict.event
    audit.append(
        connection,
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

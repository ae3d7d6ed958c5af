"""Recording received events in the ledger, once each, and moving playbacks along.

`record_events` is one unit of work's worth of SQL, set-based so a batch of 500 costs a
handful of statements (see `bulk`):

1. insert every event not already known (unique on source + source event id), the
   playbacks seen for the first time, already folded from their events, and, with a
   tariff, the charges (records and outbox rows) of those that ended completed or stopped
   from a webhook (a new playback carries its first terminal event from the webhook or the
   stream, `terminals`); then lock the playbacks that existed (in id order, so concurrent
   batches cannot deadlock). On PostgreSQL that is one round trip;
2. fold the new events into the playbacks that existed (their state, and a first terminal
   event that came before the one the row holds), write the ones that changed, and
   charge those that ended now, or whose first webhook terminal event follows the stream's;
3. last, audit every conflicting terminal event and every charge, in one append (on
   PostgreSQL hashed by the server and sent with the COMMIT when the transaction allows:
   the audit head, the lock every writer shares, is then held for no round trip of ours).

The caller commits. Nothing is acknowledged to the sender before that commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from .. import audit
from ..models import PlaybackEvent, utcnow
from . import bulk, terminals
from .events import TERMINAL_STATES, ReceivedEvent
from .rating import Tariff
from .records import Ended, audit_entries, charge_rows, insert_records
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
    charging = tariff is not None and source in CHARGING_SOURCES
    now = utcnow()
    event_rows = [_event_row(item) for item in unique]
    # The would-be charges of every playback, should it be new; the audit entries reuse them.
    charges = charge_rows([_ended(pid, by_playback[pid][0].event.conversation_id, outcome.state, source)
                           for pid, outcome in folded.items() if outcome.became_terminal], tariff) if charging else []
    first = bulk.write_first(
        connection,
        event_rows,
        [_playback_row(pid, by_playback[pid][0], outcome.state) for pid, outcome in folded.items()],
        charges,
        source=source,
        now=now,
    )
    inserted = first.inserted
    result = IngestResult(accepted=len(inserted), duplicates=len(received) - len(inserted), inserted=inserted)
    for playback_id in sorted(first.created):
        _collect(result, playback_id, by_playback[playback_id][0].event.conversation_id, folded[playback_id], source)
    existing = {
        pid: new for pid, items in by_playback.items()
        if pid not in first.created and (new := [item for item in items if item.source_event_id in inserted])
    }
    if existing:
        firsts = terminals.first_terminals(
            (row | {"id": first.event_ids[key]} for row in event_rows
             if (key := row["source_event_id"]) in first.event_ids and row["playback_id"] in existing), source)
        _fold_into_existing(connection, existing, firsts, first.existing, result, now, source)
    charged = list(first.charged)
    if charging:
        rows = charge_rows([e for e in result.ended if e.playback_id not in first.created], tariff)
        charged += insert_records(connection, rows)
        charges += rows
    result.charged = [record_id for record_id, _ in charged]
    actor = f"genesys:{source}"
    entries = [_conflict_entry(conflict, actor) for conflict in result.conflicts]
    if charged:
        # Keyed by idempotency key, the last row wins: an existing playback's charge as
        # written (`rows`, appended last) over its would-be charge as a new one.
        entries += audit_entries(sorted(charged), charges, actor=actor)
    # Last, and on PostgreSQL with the commit: the audit head is the one lock every writer shares.
    audit.append_chained(connection, entries, at_commit=True)
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
    connection: Connection, new: dict[str, list[ReceivedEvent]], firsts: dict[str, dict], locked: list,
    result: IngestResult, now, source: str,
) -> None:
    """Fold the new events into the playbacks locked by the first write, write the changes.

    `firsts`: per playback, the first terminal columns of `source` among the new events
    (`terminals.first_terminals`), kept when they come before the row's.
    """
    changed = []
    late = []
    for row in locked:
        if row.playback_id not in new:
            continue
        current = PlaybackState(**{c: getattr(row, c) for c in bulk.PLAYBACK_STATE_COLUMNS})
        outcome = apply_events(current, _pairs(new[row.playback_id]))
        _collect(result, row.playback_id, row.conversation_id, outcome, source)
        if current.terminal and source in CHARGING_SOURCES:
            late.append((row.playback_id, row.conversation_id, new[row.playback_id]))
        held = terminals.stored(row)
        first = terminals.with_first(held, firsts.get(row.playback_id), source)
        if outcome.state != current or first != held:
            changed.append({"id": row.id, **_columns(outcome.state), **first})
    bulk.update_playbacks(connection, changed, now=now)
    if late:
        _collect_late_terminals(connection, result, late, source)


def _ended(playback_id: str, conversation_id: str, state: PlaybackState, source: str) -> Ended:
    return Ended(playback_id, conversation_id, state.state, state.duration_ms, state.ended_at, source)


def _collect(result: IngestResult, playback_id: str, conversation_id: str, outcome: Outcome, source: str) -> None:
    result.conflicts.extend(outcome.conflicts)
    if outcome.became_terminal:
        result.ended.append(_ended(playback_id, conversation_id, outcome.state, source))


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


def _conflict_entry(conflict: Conflict, actor: str) -> audit.NewEntry:
    event = conflict.event
    return audit.NewEntry(
        actor=actor,
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

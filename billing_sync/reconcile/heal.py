"""Healing: billing records for what a run can prove, through records.py (outbox and audit).

Two rules, each switchable: a playback the stream saw end but the webhook never reported
is charged from its stream evidence; a webhook duration that both the stream and
analytics contradict is adjusted to the stream's. Both work through the run's open
discrepancies a batch at a time (keyset on the id), so memory stays flat. Their idempotency
keys make a second run over the same window heal nothing twice: the charge's cause is the
same `terminal` the webhook's would have had (so a late webhook cannot charge again), the
adjustment's is `reconcile:duration_mismatch`.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, select, update

from ..ledger.rating import Tariff
from ..ledger.records import CHARGEABLE_STATES, Ended, adjust, charge_ended
from ..models import BillingRecord, Discrepancy, PlaybackEvent
from .compare import DURATION_CAUSE

BATCH = 500
ACTOR = "reconciliation"


def heal_missing_webhooks(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Charge every open missing_webhook of the run from the stream's first terminal event."""
    charged = 0
    after = 0
    while True:
        batch = connection.execute(
            select(Discrepancy.id, Discrepancy.playback_id, Discrepancy.conversation_id,
                   Discrepancy.stream_state, Discrepancy.stream_ms)
            .where(Discrepancy.run_id == run_id, Discrepancy.kind == "missing_webhook",
                   Discrepancy.status == "open", Discrepancy.stream_state.in_(CHARGEABLE_STATES),
                   Discrepancy.id > after)
            .order_by(Discrepancy.id).limit(BATCH)
        ).all()
        if not batch:
            break
        after = batch[-1].id
        ended_at = _stream_ended_at(connection, [row.playback_id for row in batch])
        ended = [Ended(row.playback_id, row.conversation_id, row.stream_state, row.stream_ms,
                       ended_at.get(row.playback_id), "stream") for row in batch]
        charged += len(charge_ended(connection, ended, tariff, actor=ACTOR))
    _mark_healed(connection, run_id, "missing_webhook",
                 select(BillingRecord.id).where(BillingRecord.playback_id == Discrepancy.playback_id,
                                                BillingRecord.kind == "charge"))
    return charged


def heal_durations(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Adjust every corroborated open duration_mismatch of the run to the stream's duration."""
    adjusted = 0
    after = 0
    while True:
        batch = connection.execute(
            select(Discrepancy.id, Discrepancy.playback_id, Discrepancy.stream_ms, BillingRecord.id.label("charge_id"))
            .join(BillingRecord, and_(BillingRecord.playback_id == Discrepancy.playback_id,
                                      BillingRecord.kind == "charge"))
            .where(Discrepancy.run_id == run_id, Discrepancy.kind == "duration_mismatch",
                   Discrepancy.status == "open", Discrepancy.corroborated == True,  # noqa: E712 - SQL
                   Discrepancy.id > after)
            .order_by(Discrepancy.id).limit(BATCH)
        ).all()
        if not batch:
            break
        after = batch[-1].id
        for row in batch:
            if adjust(connection, row.charge_id, duration_ms=row.stream_ms, tariff=tariff, cause=DURATION_CAUSE,
                      actor=ACTOR, provenance="stream") is not None:
                adjusted += 1
    _mark_healed(connection, run_id, "duration_mismatch",
                 select(BillingRecord.id).where(BillingRecord.playback_id == Discrepancy.playback_id,
                                                BillingRecord.kind == "adjustment",
                                                BillingRecord.cause == DURATION_CAUSE))
    return adjusted


def _stream_ended_at(connection: Connection, playback_ids: list[str]) -> dict:
    # Newest first, so the first terminal event (lowest id) is the one kept.
    rows = connection.execute(
        select(PlaybackEvent.playback_id, PlaybackEvent.occurred_at)
        .where(PlaybackEvent.source == "stream", PlaybackEvent.playback_id.in_(playback_ids),
               PlaybackEvent.state.in_(CHARGEABLE_STATES))
        .order_by(PlaybackEvent.id.desc())
    )
    return {playback_id: occurred_at for playback_id, occurred_at in rows}


def _mark_healed(connection: Connection, run_id: int, kind: str, record) -> None:
    """Set-based: the run's open discrepancies of `kind` that now have their record are healed."""
    record = record.limit(1).scalar_subquery()
    connection.execute(
        update(Discrepancy)
        .where(Discrepancy.run_id == run_id, Discrepancy.kind == kind, Discrepancy.status == "open",
               record.isnot(None))
        .values(status="healed", record_id=record)
    )

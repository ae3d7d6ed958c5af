"""Healing: billing records for what a run can prove, through records.py (outbox and audit).

Two rules, each switchable: a playback the stream saw end but the webhook never reported
is charged from its stream evidence; a webhook duration that both the stream and
analytics contradict is adjusted to the stream's. Both work through the run's open
discrepancies a batch at a time (keyset on the id), so memory stays flat, and write each
batch's records, outbox rows and audit entries set-based (`records.py`). Their idempotency
keys make a second run over the same window heal nothing twice: the charge's cause is the
same `terminal` the webhook's would have had (so a late webhook cannot charge again), the
adjustment's is `reconcile:duration_mismatch`.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, select, update

from ..ledger.rating import Tariff
from ..ledger.records import CHARGEABLE_STATES, Correction, Ended, adjust_many, charge_ended
from ..models import BillingRecord, Discrepancy, PlaybackEvent
from .compare import DURATION_CAUSE, TERMINAL

BATCH = 2000
ACTOR = "reconciliation"


def heal_missing_webhooks(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Charge every open missing_webhook of the run from the stream's first terminal event."""
    stream_first = (select(func.min(PlaybackEvent.id))
                    .where(PlaybackEvent.source == "stream", PlaybackEvent.playback_id == Discrepancy.playback_id,
                           PlaybackEvent.state.in_(TERMINAL))
                    .scalar_subquery())
    first = PlaybackEvent.__table__.alias("first_stream_terminal")
    ended_at = select(first.c.occurred_at).where(first.c.id == stream_first).scalar_subquery()
    query = (select(Discrepancy.id, Discrepancy.playback_id, Discrepancy.conversation_id, Discrepancy.stream_state,
                    Discrepancy.stream_ms, ended_at.label("ended_at"))
             .where(Discrepancy.run_id == run_id, Discrepancy.kind == "missing_webhook",
                    Discrepancy.status == "open", Discrepancy.stream_state.in_(CHARGEABLE_STATES)))
    charged = 0
    for batch in _batches(connection, query):
        ended = [Ended(row.playback_id, row.conversation_id, row.stream_state, row.stream_ms, row.ended_at, "stream")
                 for row in batch]
        charged += len(charge_ended(connection, ended, tariff, actor=ACTOR))
    _mark_healed(connection, run_id, "missing_webhook",
                 select(BillingRecord.id).where(BillingRecord.playback_id == Discrepancy.playback_id,
                                                BillingRecord.kind == "charge"))
    return charged


def heal_durations(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Adjust every corroborated open duration_mismatch of the run to the stream's duration."""
    query = (select(Discrepancy.id, Discrepancy.stream_ms, BillingRecord.id.label("charge_id"))
             .join(BillingRecord, and_(BillingRecord.playback_id == Discrepancy.playback_id,
                                       BillingRecord.kind == "charge"))
             .where(Discrepancy.run_id == run_id, Discrepancy.kind == "duration_mismatch",
                    Discrepancy.status == "open", Discrepancy.corroborated == True))  # noqa: E712 - SQL
    adjusted = 0
    for batch in _batches(connection, query):
        adjusted += len(adjust_many(connection, [Correction(row.charge_id, row.stream_ms) for row in batch],
                                    tariff=tariff, cause=DURATION_CAUSE, actor=ACTOR, provenance="stream"))
    _mark_healed(connection, run_id, "duration_mismatch",
                 select(BillingRecord.id).where(BillingRecord.playback_id == Discrepancy.playback_id,
                                                BillingRecord.kind == "adjustment",
                                                BillingRecord.cause == DURATION_CAUSE))
    return adjusted


def _batches(connection: Connection, query):
    """The rows of `query` (over discrepancies) a batch at a time, keyset on the discrepancy id."""
    after = 0
    while batch := connection.execute(query.where(Discrepancy.id > after).order_by(Discrepancy.id)
                                      .limit(BATCH)).all():
        after = batch[-1].id
        yield batch


def _mark_healed(connection: Connection, run_id: int, kind: str, record) -> None:
    """Set-based: the run's open discrepancies of `kind` that now have their record are healed."""
    record = record.limit(1).scalar_subquery()
    connection.execute(
        update(Discrepancy)
        .where(Discrepancy.run_id == run_id, Discrepancy.kind == kind, Discrepancy.status == "open",
               record.isnot(None))
        .values(status="healed", record_id=record)
    )

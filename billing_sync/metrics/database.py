"""Metrics read from the database at scrape time: the outbox, deliveries, stream listeners, reconciliation.

Each is true for the whole deployment, whichever process or host did the work: a
dispatcher or stream listener on another machine writes its state to the database, and
every web worker answers /metrics with the same numbers. Every query is served by an
index or reads a table of a handful of rows; none scans the ledger, the delivered outbox
or the audit log:

- outbox: `status IN ('pending', 'dead')` on the (status, next_attempt_at) index, so the
  cost follows the backlog, not the history;
- delivery_counts: at most 15 rows; stream_listeners: one row per shard;
- discrepancies: the latest run's rows through the (run_id, kind, status) index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..db import Database
from ..models import (
    DELIVERY_ANSWERS, DELIVERY_OUTCOMES, DISCREPANCY_KINDS, DISCREPANCY_STATUSES, DeliveryCount, Discrepancy,
    OutboxMessage, ReconciliationRun, StreamListener, utcnow,
)

log = logging.getLogger(__name__)
LISTENER_STATES = ("starting", "idle", "connecting", "connected", "disconnected", "stopped", "failed")


class DatabaseCollector(Collector):
    """Reads the deployment's state from the database on every collect (every scrape)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("billing_sync_metrics_database_up",
                               "1 when the database answered this scrape's queries, 0 when it did not.")
        try:
            with self._db.read() as session:
                families = [*outbox_metrics(session, utcnow()), *delivery_metrics(session),
                            *stream_metrics(session), *reconciliation_metrics(session)]
        except Exception as error:  # a scrape reports the database as down rather than failing
            log.warning("metrics: database query failed: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def outbox_metrics(session: Session, now: datetime) -> list:
    """Messages not yet delivered (pending, due, dead) and how long the oldest due one has waited."""
    messages = GaugeMetricFamily("billing_sync_outbox_messages",
                                 "Outbox messages not delivered, by status: pending (to be sent) or dead (gave up).",
                                 labels=["status"])
    due = GaugeMetricFamily("billing_sync_outbox_due_messages",
                            "Pending outbox messages whose next attempt is due now (the dispatchers' backlog).")
    oldest = GaugeMetricFamily("billing_sync_outbox_oldest_due_age_seconds",
                               "Seconds the longest-waiting due message has been due; 0 when none is due.")
    rows = session.execute(
        select(OutboxMessage.status, func.count(),
               func.sum(case((OutboxMessage.next_attempt_at <= now, 1), else_=0)),
               func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.status.in_(("pending", "dead")))
        .group_by(OutboxMessage.status)
    ).all()
    found = {status: (count, due_count or 0, first) for status, count, due_count, first in rows}
    for status in ("pending", "dead"):
        messages.add_metric([status], found.get(status, (0,))[0])
    _, due_count, first_due = found.get("pending", (0, 0, None))
    due.add_metric([], due_count)
    oldest.add_metric([], max(0.0, (now - _aware(first_due)).total_seconds()) if first_due else 0.0)
    return [messages, due, oldest]


def delivery_metrics(session: Session) -> list:
    """Delivery attempts by outcome, and the failed ones by what the billing system answered."""
    attempts = CounterMetricFamily("billing_sync_delivery_attempts",
                                   "Deliveries attempted by every dispatcher, by outcome: delivered, retry "
                                   "(failed, will be tried again) or dead (failed, given up).", labels=["outcome"])
    failures = CounterMetricFamily("billing_sync_delivery_failures",
                                   "Failed delivery attempts (retry or dead) by the billing system's answer: "
                                   "2xx-5xx status class, or none (timeout, refused, reset).", labels=["answer"])
    by_outcome = dict.fromkeys(DELIVERY_OUTCOMES, 0)
    by_answer = dict.fromkeys(DELIVERY_ANSWERS, 0)
    for outcome, answer, count in session.execute(
        select(DeliveryCount.outcome, DeliveryCount.answer, DeliveryCount.attempts)
    ):
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        if outcome != "delivered":
            by_answer[answer] = by_answer.get(answer, 0) + count
    for outcome, count in by_outcome.items():
        attempts.add_metric([outcome], count)
    for answer, count in by_answer.items():
        failures.add_metric([answer], count)
    return [attempts, failures]


def stream_metrics(session: Session) -> list:
    """Each stream listener shard's last reported connection state (`billing-sync stream` writes it)."""
    state = GaugeMetricFamily("billing_sync_stream_listener_state",
                              "1 for the state a stream listener shard last reported, 0 for the others.",
                              labels=["shard", "state"])
    channels = GaugeMetricFamily("billing_sync_stream_channels_connected",
                                 "Notification channels a shard has connected now.", labels=["shard"])
    topics = GaugeMetricFamily("billing_sync_stream_topics", "Topics a shard is subscribed to.", labels=["shard"])
    connects = CounterMetricFamily("billing_sync_stream_connects",
                                   "Channel connections a shard made since it started.", labels=["shard"])
    disconnects = CounterMetricFamily("billing_sync_stream_disconnects",
                                      "Channel drops a shard survived since it started.", labels=["shard"])
    updated = GaugeMetricFamily("billing_sync_stream_listener_updated_timestamp_seconds",
                                "When a shard last wrote its state: on every change and at least every 30 s while it runs.",
                                labels=["shard"])
    for row in session.scalars(select(StreamListener).order_by(StreamListener.shard)):
        for name in LISTENER_STATES:
            state.add_metric([row.shard, name], 1 if row.state == name else 0)
        channels.add_metric([row.shard], row.channels_connected)
        topics.add_metric([row.shard], row.topics)
        connects.add_metric([row.shard], row.connects)
        disconnects.add_metric([row.shard], row.disconnects)
        updated.add_metric([row.shard], _aware(row.updated_at).timestamp())
    return [state, channels, topics, connects, disconnects, updated]


def reconciliation_metrics(session: Session) -> list:
    """The latest reconciliation run: when, over which window, and its discrepancies by kind and status."""
    discrepancies = GaugeMetricFamily("billing_sync_reconciliation_discrepancies",
                                      "Discrepancies the latest reconciliation run found, by kind and status "
                                      "(open, healed, pending, info).", labels=["kind", "status"])
    finished = GaugeMetricFamily("billing_sync_reconciliation_last_run_timestamp_seconds",
                                 "When the latest reconciliation run was recorded; absent before the first.")
    window_end = GaugeMetricFamily("billing_sync_reconciliation_last_run_until_timestamp_seconds",
                                   "The end of the latest run's window [since, until).")
    run = session.execute(
        select(ReconciliationRun.id, ReconciliationRun.until, ReconciliationRun.created_at)
        .order_by(ReconciliationRun.id.desc()).limit(1)
    ).first()
    counts: dict[tuple[str, str], int] = {}
    if run is not None:
        finished.add_metric([], _aware(run.created_at).timestamp())
        window_end.add_metric([], _aware(run.until).timestamp())
        counts = {(kind, status): n for kind, status, n in session.execute(
            select(Discrepancy.kind, Discrepancy.status, func.count())
            .where(Discrepancy.run_id == run.id).group_by(Discrepancy.kind, Discrepancy.status)
        )}
    for kind in DISCREPANCY_KINDS:
        for status in DISCREPANCY_STATUSES:
            discrepancies.add_metric([kind, status], counts.get((kind, status), 0))
    return [discrepancies, finished, window_end]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

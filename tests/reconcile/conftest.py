"""Reconciliation fixtures: a ledger written through ingest, and analytics as a test double."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_sync.genesys.models import ConversationPlaybacks, PlaybackMetrics
from billing_sync.ledger.events import PlaybackEvent, ReceivedEvent
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.rating import Tariff
from billing_sync.models import BillingRecord, Discrepancy
from billing_sync.reconcile import Rules, reconcile

from ..conftest import make_settings
from ..workers.conftest import start_worker  # noqa: F401 - the end-to-end test runs the stream worker

SINCE = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=1)
AS_OF = UNTIL + timedelta(hours=2)
TARIFF = Tariff.from_settings(make_settings())


@dataclass
class FakeAnalytics:
    """Analytics as a test double: the conversations it reports, and the windows asked for."""

    conversations: dict[str, ConversationPlaybacks] = field(default_factory=dict)
    asked: list[tuple[datetime, datetime]] = field(default_factory=list)

    def report(self, conversation_id: str, playbacks: int, completed: int, played_ms: int,
               started_at: datetime = SINCE + timedelta(minutes=1)) -> None:
        self.conversations[conversation_id] = ConversationPlaybacks(conversation_id, started_at, playbacks,
                                                                    completed, played_ms)

    def conversation_playback_metrics(self, since: datetime, until: datetime) -> PlaybackMetrics:
        self.asked.append((since, until))
        return PlaybackMetrics(since, until, tuple(self.conversations.values()))


class Ledger:
    """Writes playback lifecycles through ingest, from the webhook (charging) or the stream."""

    def __init__(self, db) -> None:
        self.db = db

    def playback(self, source: str, *, playback_id: str | None = None, conversation_id: str = "conv-1",
                 state: str = "completed", duration_ms: int = 12_000, minute: int = 5) -> str:
        playback_id = playback_id or str(uuid.uuid4())
        start = SINCE + timedelta(minutes=minute)
        steps = [("started", 1, 0, start), (state, 2, duration_ms, start + timedelta(milliseconds=duration_ms))]
        received = [
            ReceivedEvent(f"{source}-{playback_id}-{sequence}",
                          PlaybackEvent(conversation_id, playback_id, step, ms, sequence, at), {"n": sequence})
            for step, sequence, ms, at in steps
        ]
        with self.db.transaction() as connection:
            record_events(connection, received, source=source, tariff=TARIFF if source == "webhook" else None)
        return playback_id

    def both(self, **kwargs) -> str:
        playback_id = self.playback("webhook", **kwargs)
        return self.playback("stream", playback_id=playback_id, **kwargs)

    def records(self, playback_id: str) -> list[BillingRecord]:
        with self.db.read() as session:
            return list(session.scalars(select(BillingRecord).where(BillingRecord.playback_id == playback_id)
                                        .order_by(BillingRecord.id)))

    def billed(self, playback_id: str) -> tuple[int, int]:
        records = self.records(playback_id)
        return sum(r.duration_ms for r in records), sum(r.amount_minor for r in records)

    def discrepancies(self, run_id: int) -> list[Discrepancy]:
        with self.db.read() as session:
            return list(session.scalars(select(Discrepancy).where(Discrepancy.run_id == run_id)
                                        .order_by(Discrepancy.id)))


@pytest.fixture
def ledger(db):
    return Ledger(db)


@pytest.fixture
def analytics():
    return FakeAnalytics()


@pytest.fixture
def run(db, analytics):
    """run(**rules) → the RunResult of reconciling [SINCE, UNTIL) as of AS_OF."""

    def go(*, as_of=AS_OF, **rules):
        return reconcile(db, analytics, TARIFF, since=SINCE, until=UNTIL, rules=Rules(**rules), actor="test",
                         as_of=as_of)

    return go

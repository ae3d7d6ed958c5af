"""Group commit: concurrent ingest requests in one process share one transaction.

A transaction's fixed cost (BEGIN, COMMIT and its fsync, the pool, the driver) dwarfs the
cost of writing one event. Requests that arrive while the transactions in flight (up to
LANES of them, a further one only for LANE_EVENTS waiting) are running queue up; the
thread whose request is first in the queue becomes the leader, writes every queued request
in one transaction, and wakes the others. Each request is still answered only after the
commit that made its events durable, and gets its own accepted/duplicates
count. If the shared transaction fails, each request is retried alone, so one request's
failure is never another's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..db import Database
from .events import ReceivedEvent
from .ingest import IngestResult, record_events
from .rating import Tariff

# Enough to amortise a commit, small enough to keep one transaction short.
MAX_EVENTS_PER_COMMIT = 2000
# Transactions in flight at once on PostgreSQL: while one waits for its commit, the next
# group starts writing, so a process is not idle for a round trip and an fsync between
# groups. SQLite writers queue on one lock anyway: one lane there.
LANES = 2
# A further lane opens only for this many events waiting. A transaction costs its worker
# about as much CPU as writing a few dozen events: a few single events are cheaper waiting
# for the transaction in flight and sharing the next one (`scripts/bench ingest`'s single
# events: groups of 3.5-3.9 instead of 2.5-3.1, 10-20% less CPU a request in the worker and
# in PostgreSQL), while a batch pays for a transaction of its own.
LANE_EVENTS = 32


@dataclass(eq=False)
class _Request:
    received: list[ReceivedEvent]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """Records events for many threads at once, one transaction per group."""

    def __init__(
        self, db: Database, *, source: str, tariff: Tariff | None = None, lanes: int | None = None,
    ) -> None:
        self._db = db
        self._source = source
        self._tariff = tariff
        self._lanes = lanes or (1 if db.dialect == "sqlite" else LANES)
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._leaders = 0

    def record(self, received: list[ReceivedEvent]) -> IngestResult:
        """Write these events durably (with whatever else is queued); answer after the commit."""
        request = _Request(received)
        with self._lock:
            self._queue.append(request)
            if self._leaders == 0 or (self._leaders < self._lanes and self._waiting_events() >= LANE_EVENTS):
                self._leaders += 1
                request.lead = True
        if not request.lead:
            request.done.wait()
        if request.lead:  # set by us above, or handed over by the previous leader
            self._lead(request)
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self, leader: _Request) -> None:
        with self._lock:
            group = self._take_group(leader)
        self._write(group)
        with self._lock:
            # The next to lead: the first request queued that no other leader has been given.
            successor = next((request for request in self._queue if not request.lead), None)
            if successor is not None:
                successor.lead = True
                successor.done.set()
            else:
                self._leaders -= 1
        for request in group:
            request.done.set()

    def _waiting_events(self) -> int:
        """Events queued for no leader yet."""
        return sum(len(request.received) for request in self._queue if not request.lead)

    def _take_group(self, leader: _Request) -> list[_Request]:
        """The leader's request and those queued after it, in order, up to the event limit.

        Requests given to other leaders stay queued, each for its own leader: two leaders
        can queue at once (a lane free at both arrivals, or one handed over while the other
        arrived), and a leader must write its own request, since it answers it without waiting.
        """
        self._queue.remove(leader)
        group, events, rest = [leader], len(leader.received), []
        for request in self._queue:
            if request.lead or rest or events + len(request.received) > MAX_EVENTS_PER_COMMIT:
                rest.append(request)
            else:
                group.append(request)
                events += len(request.received)
        self._queue = rest
        return group

    def _write(self, group: list[_Request]) -> None:
        if len(group) > 1:
            try:
                with self._db.transaction() as connection:
                    result = record_events(connection, [e for r in group for e in r.received],
                                           source=self._source, tariff=self._tariff)
            except Exception:  # noqa: BLE001 - fall back to one transaction each, below
                pass
            else:
                _share(group, result)
                return
        for request in group:
            try:
                with self._db.transaction() as connection:
                    request.result = record_events(connection, request.received, source=self._source,
                                                   tariff=self._tariff)
            except BaseException as error:  # handed to the request's own thread
                request.error = error


def _share(group: list[_Request], result: IngestResult) -> None:
    """Each request's own counts: an event new to the ledger is accepted by its first request."""
    claimed: set[str] = set()
    for request in group:
        ids = {item.source_event_id for item in request.received}
        mine = (ids & result.inserted) - claimed
        claimed |= mine
        request.result = IngestResult(accepted=len(mine), duplicates=len(request.received) - len(mine))

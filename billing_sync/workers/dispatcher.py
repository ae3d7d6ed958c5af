"""The billing dispatcher: claim due outbox messages, post them signed, record what happened.

One loop: claim a batch under a lease, deliver it with bounded concurrency, settle every
attempt in one transaction, repeat; sleep a little when nothing is due. When `stop` is set
(SIGTERM, SIGINT) the requests already in flight finish and are recorded, the rest of the
batch is released at once for another dispatcher, and `run` returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from ..billing import outbox
from ..billing.delivery import Deliverer
from ..billing.retry import RetryPolicy
from ..billing.signing import Signer
from ..config import Settings
from ..db import Database

log = logging.getLogger(__name__)
ACTOR = "dispatcher"


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    batch_size: int = 200
    concurrency: int = 16
    lease_s: float = 300.0
    timeout_s: float = 10.0
    idle_poll_s: float = 0.5


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    retry: int = 0
    dead: int = 0
    released: int = 0
    batches: int = 0

    def add(self, settled: dict[str, int]) -> None:
        self.delivered += settled["delivered"]
        self.retry += settled["retry"]
        self.dead += settled["dead"]


def dispatcher_name() -> str:
    """Who holds a lease: host, pid and a random suffix, unique among live dispatchers."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Delivers the outbox of one database to the billing system."""

    def __init__(self, db: Database, deliverer: Deliverer, policy: RetryPolicy, *,
                 options: DispatchOptions = DispatchOptions(), owner: str | None = None) -> None:
        self._db = db
        self._deliverer = deliverer
        self._policy = policy
        self._options = options
        self.owner = owner or dispatcher_name()
        worst_batch_s = -(-options.batch_size // options.concurrency) * options.timeout_s
        if worst_batch_s > options.lease_s:
            log.warning("dispatcher lease (%ss) is shorter than a slow batch (%ss): another dispatcher "
                        "may re-send some messages (receivers dedupe on webhook-id)", options.lease_s, worst_batch_s)

    @classmethod
    def from_settings(cls, db: Database, settings: Settings, *, options: DispatchOptions = DispatchOptions(),
                      **kwargs) -> Dispatcher:
        """A dispatcher for the configured URL, secrets and retry schedule (ConfigError if unset)."""
        settings.require("billing_webhook_url", "billing_webhook_secret")
        deliverer = Deliverer(settings.billing_webhook_url, Signer(settings.billing_webhook_secret),
                              concurrency=options.concurrency, timeout_s=options.timeout_s)
        return cls(db, deliverer, RetryPolicy(settings.billing_retry_schedule), options=options, **kwargs)

    def run(self, stop: threading.Event, *, once: bool = False) -> DispatchStats:
        """Deliver until `stop` is set (or, with `once`, until nothing is due). SQLite: DispatcherBusy
        if another dispatcher holds the database."""
        stats = DispatchStats()
        try:
            with outbox.exclusive_dispatcher(self._db.engine):
                if self._db.dialect == "sqlite":
                    with self._db.transaction() as connection:
                        outbox.release_stale_leases(connection)
                try:
                    self._loop(stop, stats, once)
                finally:
                    with self._db.transaction() as connection:
                        stats.released += outbox.release(connection, owner=self.owner)
        finally:
            self._deliverer.close()
        return stats

    def _loop(self, stop: threading.Event, stats: DispatchStats, once: bool) -> None:
        while not stop.is_set():
            if self.dispatch_batch(stop, stats):
                continue
            if once:
                return
            stop.wait(self._options.idle_poll_s)

    def dispatch_batch(self, stop: threading.Event, stats: DispatchStats, *, now: datetime | None = None) -> bool:
        """Claim, deliver and settle one batch; False when nothing was due."""
        with self._db.transaction() as connection:
            batch = outbox.claim_due_messages(connection, owner=self.owner, limit=self._options.batch_size,
                                              lease_s=self._options.lease_s, now=now)
        if not batch:
            return False
        attempts, unstarted = self._deliverer.deliver(batch, stop)
        with self._db.transaction() as connection:
            stats.add(outbox.settle_attempts(connection, attempts, owner=self.owner, policy=self._policy,
                                             actor=f"{ACTOR}:{self.owner}"))
            stats.released += outbox.release(connection, owner=self.owner, ids=[m.id for m in unstarted])
        stats.batches += 1
        return True


"""Webhook delivery (contract §7): at-least-once, unordered, retried with backoff for
24 h of sandbox time, with the drop/duplicate/reorder/delay faults applied."""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from .clock import Clock
from .errors import GenesysError
from .faults import FaultSettings
from .randomness import SeededStream
from .scheduler import Scheduler
from .webhooks import Webhook, WebhookRegistry

log = logging.getLogger(__name__)

RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 600.0
REORDER_HOLD_MS = 3_000


@dataclass
class Delivery:
    """One copy of one notification on its way to one webhook."""

    webhook_id: str
    body: bytes
    created: datetime
    attempts: int = 0


class WebhookDelivery:
    """Schedules deliveries on the sandbox clock and posts them from a small worker pool."""

    def __init__(self, registry: WebhookRegistry, scheduler: Scheduler, clock: Clock,
                 faults: FaultSettings, randomness: SeededStream, *, timeout_s: float = 10.0,
                 workers: int = 4) -> None:
        self._registry = registry
        self._scheduler = scheduler
        self._clock = clock
        self._faults = faults
        self._random = randomness
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._http = httpx.Client(timeout=timeout_s, headers={"User-Agent": "GenesysCloud-Sandbox"})
        self._threads = [threading.Thread(target=self._work, name=f"sandbox-webhook-{n}",
                                          daemon=True) for n in range(workers)]
        self._stopping = threading.Event()
        self.attempts_made = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=15)
        self._http.close()

    def enqueue(self, event_type: str, notification: dict[str, Any]) -> None:
        """Plan the deliveries of one notification to every webhook that wants it."""
        faults = self._faults.current()
        body = json.dumps(notification, separators=(",", ":")).encode()
        now = self._clock.now()
        for hook in self._registry.subscribed(event_type):
            if self._random.chance(faults.webhook_drop_rate):
                continue
            copies = 2 if self._random.chance(faults.webhook_duplicate_rate) else 1
            for _ in range(copies):
                delay_ms = float(faults.webhook_delay_ms)
                if faults.webhook_reorder:
                    delay_ms += self._random.uniform(0, REORDER_HOLD_MS)
                delivery = Delivery(webhook_id=hook.id, body=body, created=now)
                self._schedule(delivery, now + timedelta(milliseconds=delay_ms))

    def _schedule(self, delivery: Delivery, when: datetime) -> None:
        self._scheduler.call_at(when, lambda: self._queue.put(delivery))

    def _work(self) -> None:
        while (delivery := self._queue.get()) is not None:
            if self._stopping.is_set():
                continue
            try:
                self._attempt(delivery)
            except Exception:  # one bad delivery must not kill the worker
                log.exception("sandbox webhook delivery failed unexpectedly")

    def _attempt(self, delivery: Delivery) -> None:
        try:
            hook = self._registry.get(delivery.webhook_id)
        except GenesysError:  # deleted since: nothing left to deliver to
            return
        if not hook.enabled:
            return
        delivery.attempts += 1
        self.attempts_made += 1
        if self._post(hook, delivery.body):
            return
        now = self._clock.now()
        if now - delivery.created >= RETRY_FOR:
            log.warning("sandbox gave up delivering to webhook %s after %d attempts",
                        hook.id, delivery.attempts)
            return
        backoff = min(FIRST_RETRY_S * 2 ** (delivery.attempts - 1), MAX_RETRY_S)
        backoff *= self._random.uniform(0.5, 1.0)
        self._schedule(delivery, now + timedelta(seconds=backoff))

    def _post(self, hook: Webhook, body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        if hook.auth_scheme == "basic":
            pair = f"{hook.auth_username}:{hook.auth_password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            response = self._http.post(hook.address, content=body, headers=headers)
        except httpx.HTTPError as error:
            log.info("sandbox webhook %s unreachable: %s", hook.id, type(error).__name__)
            return False
        return 200 <= response.status_code < 300

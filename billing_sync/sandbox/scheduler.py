"""A timer thread that runs callbacks at sandbox-clock instants."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from .clock import Clock

log = logging.getLogger(__name__)

# Longest real wait between looks at the clock, so an injected (manual) clock is honoured.
_MAX_REAL_WAIT_S = 0.05


class Scheduler:
    """Runs each callback once, on its own thread, when the sandbox clock reaches its time.

    Callbacks must be short: slow work (HTTP deliveries) belongs on a worker pool.
    """

    def __init__(self, clock: Clock, time_scale: float) -> None:
        self._clock = clock
        self._time_scale = time_scale
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> None:
        """Run `callback` when the sandbox clock reaches `when` (at once if it has)."""
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._counter), callback))
            self._wake.notify_all()

    def _next_due(self) -> Callable[[], None] | None:
        with self._wake:
            while not self._stopping:
                now = self._clock.now()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                wait = _MAX_REAL_WAIT_S
                if self._heap:
                    ahead = (self._heap[0][0] - now).total_seconds() / self._time_scale
                    wait = min(wait, max(ahead, 0.0))
                self._wake.wait(wait)
            return None

    def _run(self) -> None:
        while (callback := self._next_due()) is not None:
            try:
                callback()
            except Exception:  # a failing callback must not stop the clock
                log.exception("sandbox scheduler callback failed")

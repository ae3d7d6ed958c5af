"""What an answer from the billing system means for its message: delivered, retry when, or dead.

2xx is delivered; 410 Gone is dead at once; anything else (other statuses, timeouts,
refused connections) is retried after the schedule's next delay, with jitter, until the
schedule runs out and the message is dead. 429 and 503 may name a `Retry-After`: it is a
lower bound, never a reason to retry sooner than the schedule says.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

GONE = 410
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # "delivered", "pending" (retry after `delay_s`) or "dead"
    delay_s: float | None = None


def up_to_a_fifth_later(delay_s: float) -> float:
    """Jitter: spread retries over [delay, 1.2 × delay], so a recovered receiver is not stampeded."""
    return delay_s * (1 + random.random() / 5)


class RetryPolicy:
    """The retry schedule: `schedule[n]` seconds before attempt n + 1 (schedule[0] is 0)."""

    def __init__(self, schedule: Sequence[float], *, jitter: Callable[[float], float] = up_to_a_fifth_later) -> None:
        if not schedule:
            raise ValueError("the retry schedule needs at least one entry")
        self.schedule = tuple(schedule)
        self._jitter = jitter

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def decide(self, *, status: int | None, attempts: int, retry_after_s: float | None = None) -> Decision:
        """The fate of a message after its `attempts`-th attempt was answered with `status`.

        `status` is None when no answer came (timeout, connection refused).
        """
        if status is not None and 200 <= status < 300:
            return Decision("delivered")
        if status == GONE or attempts >= self.max_attempts:
            return Decision("dead")
        delay = self._jitter(self.schedule[attempts])
        if status in RETRY_AFTER_STATUSES and retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return Decision("pending", delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

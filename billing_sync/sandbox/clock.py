"""Sandbox clocks: scaled real time by default, a hand-driven clock for tests."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """What the sandbox needs from a clock: the current sandbox time, timezone-aware UTC."""

    def now(self) -> datetime: ...


class ScaledClock:
    """Sandbox time that starts at the real UTC time and runs `time_scale` times faster."""

    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._start = start or datetime.now(timezone.utc)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self.time_scale
        return self._start + timedelta(seconds=elapsed)


class ManualClock:
    """A clock that moves only when told to; for tests that need exact times."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by `seconds` and return the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def iso_ms(moment: datetime) -> str:
    """Format an aware datetime as Genesys does: ISO-8601 UTC with milliseconds and `Z`."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 instant; a value without a zone is rejected."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone")
    return value.astimezone(timezone.utc)

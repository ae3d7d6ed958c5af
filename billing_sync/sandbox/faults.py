"""Fault settings (contract §10): validated, partially updatable, thread-safe.

All durations are sandbox time (seconds or milliseconds of the sandbox clock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any


class FaultError(ValueError):
    """A fault setting that is unknown or has the wrong type or range; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Faults:
    """The current fault settings; defaults describe a healthy platform."""

    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder: bool = False
    webhook_delay_ms: int = 0
    rate_limit_every: int | None = None
    stream_drop_every_s: float | None = None
    socket_closing_now: bool = False
    analytics_lag_s: float = 0.0
    billing_fail_status: int | None = None
    billing_fail_for_s: float | None = None


def _rate(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FaultError(field, "must be a number from 0 to 1")
    return float(value)


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FaultError(field, "must be true or false")
    return value


def _count(field: str, value: Any, *, nullable: bool, minimum: int = 0) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultError(field, f"must be an integer >= {minimum}" + (" or null" if nullable else ""))
    return value


def _seconds(field: str, value: Any, *, nullable: bool, positive: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise FaultError(field, f"must be a number {bound}" + (" or null" if nullable else ""))
    return float(value)


def _status(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise FaultError(field, "must be an HTTP status from 400 to 599 or null")
    return value


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "webhook_drop_rate": _rate,
    "webhook_duplicate_rate": _rate,
    "webhook_reorder": _flag,
    "webhook_delay_ms": lambda f, v: _count(f, v, nullable=False),
    "rate_limit_every": lambda f, v: _count(f, v, nullable=True, minimum=1),
    "stream_drop_every_s": lambda f, v: _seconds(f, v, nullable=True, positive=True),
    "socket_closing_now": _flag,
    "analytics_lag_s": lambda f, v: _seconds(f, v, nullable=False),
    "billing_fail_status": _status,
    "billing_fail_for_s": lambda f, v: _seconds(f, v, nullable=True),
}


def validate_changes(changes: Any) -> dict[str, Any]:
    """Check a partial update; raises FaultError naming the first bad field."""
    if not isinstance(changes, Mapping):
        raise FaultError("body", "must be a JSON object")
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        validator = _VALIDATORS.get(field)
        if validator is None:
            raise FaultError(str(field), "unknown fault setting")
        clean[field] = validator(field, value)
    return clean


class FaultSettings:
    """The live fault settings, shared by every part of the sandbox."""

    def __init__(self, clock_now: Callable[[], datetime]) -> None:
        self._now = clock_now
        self._lock = threading.Lock()
        self._faults = Faults()
        self._billing_fail_since: datetime | None = None

    def current(self) -> Faults:
        with self._lock:
            return self._faults

    def update(self, changes: Any) -> Faults:
        """Apply a validated partial update and return the new settings."""
        clean = validate_changes(changes)
        with self._lock:
            if "billing_fail_status" in clean or "billing_fail_for_s" in clean:
                self._billing_fail_since = self._now()
            self._faults = replace(self._faults, **clean)
            return self._faults

    def clear_socket_closing(self) -> None:
        """`socket_closing_now` is a one-shot action: it resets once carried out."""
        with self._lock:
            self._faults = replace(self._faults, socket_closing_now=False)

    def billing_failure(self) -> int | None:
        """The status the billing sink must answer now, or None when it is healthy."""
        with self._lock:
            status = self._faults.billing_fail_status
            window = self._faults.billing_fail_for_s
            since = self._billing_fail_since
        if status is None or since is None:
            return None
        if window is not None and (self._now() - since).total_seconds() >= window:
            return None
        return status

    def as_json(self) -> dict[str, Any]:
        return asdict(self.current())

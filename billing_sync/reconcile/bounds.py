"""Which windows a reconciliation run accepts."""

from __future__ import annotations

from datetime import datetime, timedelta

# Analytics is fetched in queries of at most 7 days: a year is 53 of them, a typo like
# 2062 for 2026 would be thousands, holding a worker for hours.
MAX_WINDOW = timedelta(days=366)


class WindowError(ValueError):
    """A window a run refuses: empty, reversed, or longer than MAX_WINDOW."""


def check_window(since: datetime, until: datetime) -> None:
    """Raise WindowError unless [since, until) is a window a run can cover."""
    if since >= until:
        raise WindowError("since must be before until")
    if until - since > MAX_WINDOW:
        raise WindowError(f"the window may be at most {MAX_WINDOW.days} days long")

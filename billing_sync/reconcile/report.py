"""Completion rates over an interval, per hour or day: the ledger's and analytics' side by side.

The ledger's figures come from one GROUP BY over the playbacks that reached a terminal
state, bucketed by when they started; analytics' from its per-conversation metrics,
bucketed by when the conversation started. A playback and its conversation share a bucket
unless the conversation began in the previous one. Totals come last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session

from ..genesys.models import PlaybackMetrics
from ..ledger.events import TERMINAL_STATES
from ..models import Playback

GRANULARITIES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 10_000
_SQLITE_FORMAT = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
_POSTGRES_FORMAT = {"hour": 'YYYY-MM-DD"T"HH24', "day": "YYYY-MM-DD"}
_KEY_LENGTH = {"hour": len("2026-11-24T02"), "day": len("2026-11-24")}


class ReportError(ValueError):
    """An interval the report cannot cover (too many buckets, empty)."""


@dataclass(slots=True)
class Counts:
    playbacks: int = 0
    completed: int = 0

    def json(self, prefix: str) -> dict:
        rate = round(self.completed / self.playbacks, 6) if self.playbacks else None
        return {f"{prefix}_playbacks": self.playbacks, f"{prefix}_completed": self.completed,
                f"{prefix}_completion_rate": rate}


def buckets(since: datetime, until: datetime, granularity: str) -> list[datetime]:
    """The starts of the UTC hours or days that overlap [since, until)."""
    if since >= until:
        raise ReportError("since must be before until")
    step = GRANULARITIES[granularity]
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        start = start.replace(hour=0)
    if (until - start) / step > MAX_BUCKETS:
        raise ReportError(f"more than {MAX_BUCKETS} {granularity}s; narrow the interval")
    # Counted, not stepped past `until`: a step beyond the last bucket may pass the year 9999.
    return [start + n * step for n in range(math.ceil((until - start) / step))]


def completion_report(session: Session, metrics: PlaybackMetrics, since: datetime, until: datetime,
                      granularity: str) -> list[dict]:
    """One row per hour or day of [since, until), then a total row."""
    starts = buckets(since, until, granularity)
    step = GRANULARITIES[granularity]
    ledger = _ledger_counts(session, since, until, granularity)
    analytics: dict[str, Counts] = {}
    for conversation in metrics.conversations:
        key = _key(conversation.started_at or since, granularity)
        counts = analytics.setdefault(key, Counts())
        counts.playbacks += conversation.playbacks
        counts.completed += conversation.completed
    rows = []
    for start in starts:
        key = _key(start, granularity)
        rows.append({"interval": key, "since": max(start, since).isoformat(),
                     "until": (until if until - start <= step else start + step).isoformat(),
                     **ledger.get(key, Counts()).json("ledger"), **analytics.get(key, Counts()).json("analytics")})
    total_ledger = Counts(sum(c.playbacks for c in ledger.values()), sum(c.completed for c in ledger.values()))
    total_analytics = Counts(metrics.playbacks, metrics.completed)
    rows.append({"interval": "total", "since": since.isoformat(), "until": until.isoformat(),
                 **total_ledger.json("ledger"), **total_analytics.json("analytics")})
    return rows


def _ledger_counts(session: Session, since: datetime, until: datetime, granularity: str) -> dict[str, Counts]:
    if session.get_bind().dialect.name == "postgresql":
        bucket = func.to_char(func.timezone("UTC", Playback.started_at), _POSTGRES_FORMAT[granularity])
    else:
        bucket = func.strftime(_SQLITE_FORMAT[granularity], Playback.started_at)
    bucket = bucket.label("bucket")
    rows = session.execute(
        select(bucket, func.count(), func.sum(case((Playback.state == "completed", 1), else_=0)))
        .where(Playback.started_at >= since, Playback.started_at < until,
               Playback.state.in_(sorted(TERMINAL_STATES)))
        .group_by(literal_column("bucket"))
    )
    return {key: Counts(int(count), int(completed or 0)) for key, count, completed in rows}


def _key(moment: datetime, granularity: str) -> str:
    # The databases write the year 273 as "0273"; strftime("%Y") would write "273".
    return moment.astimezone(UTC).isoformat()[:_KEY_LENGTH[granularity]]

"""Reading runs and their discrepancies, a page at a time (keyset on the row id)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..ledger.queries import Page
from ..models import Discrepancy, ReconciliationRun
from .run import discrepancy_counts

DISCREPANCY_FIELDS = ("id", "kind", "status", "conversation_id", "playback_id", "webhook_state", "stream_state",
                      "webhook_ms", "stream_ms", "ledger_count", "analytics_count", "ledger_ms", "analytics_ms",
                      "corroborated", "record_id")


def run_json(session: Session, run_id: int) -> dict | None:
    """A run with its rules, counts by kind and status, and healed/open/pending/info totals."""
    run = session.get(ReconciliationRun, run_id)
    if run is None:
        return None
    counts = discrepancy_counts(session, run_id)
    totals = dict(session.execute(
        select(Discrepancy.status, func.count()).where(Discrepancy.run_id == run_id).group_by(Discrepancy.status)
    ).all())
    return {
        "id": run.id, "since": run.since, "until": run.until, "as_of": run.as_of, "grace_s": run.grace_s,
        "analytics_lag_s": run.analytics_lag_s, "tolerance_ms": run.tolerance_ms,
        "tolerance_percent": run.tolerance_basis_points / 100, "heal_missing_webhook": run.heal_missing_webhook,
        "heal_duration": run.heal_duration, "requested_by": run.requested_by,
        "analytics_conversations": run.analytics_conversations, "created_at": run.created_at,
        "counts": counts,
        "healed": totals.get("healed", 0), "open": totals.get("open", 0),
        "pending": totals.get("pending", 0), "info": totals.get("info", 0),
    }


def list_discrepancies(session: Session, run_id: int, *, after_id: int | None, limit: int,
                       **filters: str | None) -> Page:
    """A run's discrepancies in id order, filtered by kind, status, playback or conversation."""
    query = select(Discrepancy).where(Discrepancy.run_id == run_id).order_by(Discrepancy.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(Discrepancy.id > after_id)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(Discrepancy, name) == value)
    rows = list(session.scalars(query))
    items = [{name: getattr(row, name) for name in DISCREPANCY_FIELDS} for row in rows[:limit]]
    return Page(items, items[-1]["id"] if items else None, len(rows) > limit)

"""The `actions` dataset: the audit log with its hashes, as one unbroken stretch of the chain.

The window selects ids from the first entry created at or after `since` to the last one
created before `until`: a contiguous run of the chain, so an exported file can be
re-walked link by link offline even if clocks of different writers disagreed slightly.
"""

from __future__ import annotations

from sqlalchemy import func, select

from ...models import AuditEntry as A
from . import Column, Dataset, Window, register


def _window(window: Window):
    first = select(func.min(A.id)).where(A.created_at >= window.since).correlate(None).scalar_subquery()
    last = select(func.max(A.id)).where(A.created_at < window.until).correlate(None).scalar_subquery()
    return (A.id >= first, A.id <= last)


ACTIONS = register(Dataset(
    name="actions",
    description="the audit log entries of the window, with prev_hash and hash",
    columns=(
        Column("id", "integer", A.id),
        Column("created_at", "timestamp", A.created_at),
        Column("actor", "text", A.actor),
        Column("action", "text", A.action),
        Column("subject", "text", A.subject),
        Column("details", "json", A.details),
        Column("prev_hash", "text", A.prev_hash),
        Column("hash", "text", A.hash),
    ),
    window=_window,
    order=("id",),
))

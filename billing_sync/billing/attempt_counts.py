"""Running totals of delivery attempts, kept in the database so every dispatcher on every host adds to one count.

/metrics reads them with one query of a table of at most 15 rows; the outbox itself
cannot give them (replays reset `attempts`, and summing it would scan every message ever sent).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from ..models import DeliveryCount


def answer_class(status: int | None) -> str:
    """'2xx' … '5xx' for an HTTP status, 'none' when no answer came (timeout, refused, reset)."""
    if status is None or not 200 <= status < 600:
        return "none"
    return f"{status // 100}xx"


def add_attempts(connection: Connection, counts: Counter[tuple[str, str]]) -> None:
    """Add `counts` ({(outcome, answer): attempts}) to the totals, in the caller's transaction."""
    if not counts:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # Sorted: two dispatchers settling at once lock the rows in the same order, never deadlock.
    rows = [{"outcome": outcome, "answer": answer, "attempts": n} for (outcome, answer), n in sorted(counts.items())]
    statement = dialect.insert(DeliveryCount).values(rows)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[DeliveryCount.outcome, DeliveryCount.answer],
        set_={"attempts": DeliveryCount.attempts + statement.excluded.attempts},
    ))

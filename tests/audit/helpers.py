"""Rows for export tests, written straight into the database, and committed tampering."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from billing_sync.models import PlaybackEvent

BASE = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# Every value a spreadsheet or a CSV parser could trip over.
AWKWARD = ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx", "'quoted", "''", "a,b", 'say "hi"', "line\nbreak",
           "crlf\r\nend", "ünïcødé ✓", "plain", "", " =not-first", "-", "=", "日本"]


def add_events(db, count: int, *, start: int = 0, awkward: bool = False, step_ms: int = 1500) -> None:
    """`count` events, one every `step_ms`, from BASE; awkward text cells if asked."""
    rows = []
    for n in range(start, start + count):
        odd = AWKWARD[n % len(AWKWARD)] if awkward else ""
        moment = BASE + timedelta(milliseconds=n * step_ms, microseconds=n % 997)
        rows.append({
            "source": "webhook", "source_event_id": f"evt-{n}{odd}", "playback_id": f"pb-{n // 3}",
            "conversation_id": f"{odd}conv-{n // 30}" if n % 2 else odd or f"conv-{n // 30}",
            "state": ("started", "progress", "completed")[n % 3], "duration_ms": (n % 3) * 6000,
            "sequence": n % 3 + 1, "media_url": None, "occurred_at": moment,
            "received_at": moment + timedelta(milliseconds=150), "payload": {"n": n},
        })
    for i in range(0, len(rows), 2000):
        with db.transaction() as connection:
            connection.execute(insert(PlaybackEvent), rows[i:i + 2000])


def drop_guards(connection, dialect: str) -> None:
    if dialect == "postgresql":
        connection.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
    else:
        connection.execute(text("DROP TRIGGER audit_log_no_update"))
        connection.execute(text("DROP TRIGGER audit_log_no_delete"))


def restore_guards(connection, dialect: str) -> None:
    if dialect == "postgresql":
        connection.execute(text(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION billing_sync_append_only()"))
    else:
        for verb in ("UPDATE", "DELETE"):
            connection.execute(text(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {verb} refused'); END"))


@contextmanager
def tampered(db, statement: str):
    """Commit `statement` against audit_log with its guards lifted; put the guards back after."""
    with db.transaction() as connection:
        drop_guards(connection, db.dialect)
        connection.execute(text(statement))
        restore_guards(connection, db.dialect)
    yield

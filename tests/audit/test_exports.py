"""Exports match the database row for row; the SQLite file stands alone and proves itself."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_sync import audit
from billing_sync.audit import datasets
from billing_sync.audit.csv_format import restore
from billing_sync.audit.export_verify import verify_export
from billing_sync.audit.exports import export_csv
from billing_sync.audit.sqlite_export import export_sqlite
from billing_sync.models import AuditEntry, PlaybackEvent

from .helpers import BASE, add_events

ALL_TIME = datasets.Window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def ledger_events(db, window) -> list[list]:
    """The events of `window` as the ORM reads them, formatted in Python: an independent reference."""
    with db.read() as session:
        rows = session.scalars(
            select(PlaybackEvent).where(PlaybackEvent.occurred_at >= window.since, PlaybackEvent.occurred_at < window.until)
            .order_by(PlaybackEvent.occurred_at, PlaybackEvent.id)).all()
    return [[e.id, iso(e.occurred_at), e.conversation_id, e.playback_id, e.state, e.duration_ms, e.sequence,
             e.source, e.source_event_id, iso(e.received_at)] for e in rows]


def parse_events(rows: list[list[str]]) -> list[list]:
    text = {2, 3, 4, 7, 8}
    return [[int(c) if i in (0, 5, 6) else restore(c) if i in text else c for i, c in enumerate(row)] for row in rows]


def test_csv_export_round_trips_the_ledger_row_for_row(db, tmp_path):
    add_events(db, 120, awkward=True)
    window = datasets.Window(BASE + timedelta(seconds=15), BASE + timedelta(seconds=150))
    result = export_csv(db, datasets.get("events"), window, tmp_path / "events.csv", actor="test")
    rows = read_csv(tmp_path / "events.csv")
    assert rows[0] == list(datasets.get("events").column_names)
    expected = ledger_events(db, window)
    assert 0 < len(expected) < 120 and result.rows == {"events": len(expected)}
    assert parse_events(rows[1:]) == expected
    assert (tmp_path / "events.csv").read_bytes().count(b"\r\n") >= len(expected) + 1


def test_actions_csv_round_trips_the_audit_log(db, tmp_path):
    with db.write() as session:
        for n in range(5):
            audit.append(session, "=cli", "thing.done", f"-thing:{n}", {"n": n, "note": "ünïcødé, \"quoted\""})
    with db.read() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    export_csv(db, datasets.get("actions"), ALL_TIME, tmp_path / "actions.csv", actor="test")
    rows = read_csv(tmp_path / "actions.csv")[1:]
    assert [[int(r[0]), r[1], restore(r[2]), r[3], restore(r[4]), json.loads(r[5]), r[6], r[7]] for r in rows] == [
        [e.id, iso(e.created_at), e.actor, e.action, e.subject, e.details, e.prev_hash, e.hash] for e in entries]
    assert rows[0][2] == "'=cli" and rows[0][4] == "'-thing:0"


def test_every_export_is_an_audit_entry_with_the_file_hash(db, tmp_path):
    add_events(db, 10)
    path = tmp_path / "e.csv"
    export_csv(db, datasets.get("events"), ALL_TIME, path, actor="cli:finance")
    with db.read() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.exported")).one()
    assert entry.actor == "cli:finance"
    assert entry.details["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry.details["rows"] == {"events": 10} and entry.details["completed"] is True
    assert (entry.details["since"], entry.details["until"]) == ("2020-01-01T00:00:00.000000Z", "2030-01-01T00:00:00.000000Z")


def table_digest(db: sqlite3.Connection, table: str, columns: list[str], order: str) -> str:
    """The manifest's hash definition, written out again here: header line, then a line per row."""
    content = json.dumps(columns, separators=(",", ":"), ensure_ascii=False) + "\n"
    for row in db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"):
        content += json.dumps(list(row), separators=(",", ":"), ensure_ascii=False, sort_keys=True) + "\n"
    return hashlib.sha256(content.encode()).hexdigest()


def test_sqlite_export_opens_with_stdlib_sqlite3_and_its_manifest_verifies(db, tmp_path):
    add_events(db, 300, awkward=True)
    with db.write() as session:
        for n in range(4):
            audit.append(session, "test", "thing.done", f"thing:{n}", {"n": n})
    path = tmp_path / "audit.sqlite"
    result = export_sqlite(db, ALL_TIME, path, actor="test")
    assert result.rows == {"events": 300, "billing": 0, "actions": 4}
    with sqlite3.connect(path) as out:
        manifest = dict(out.execute("SELECT name, value FROM manifest"))
        assert out.execute("SELECT count(*) FROM events").fetchone() == (300,)
        assert table_digest(out, "events", manifest["events.columns"].split(","), "occurred_at, id") == manifest["events.sha256"]
        assert table_digest(out, "actions", manifest["actions.columns"].split(","), "id") == manifest["actions.sha256"]
        exported = [list(r) for r in out.execute(f"SELECT {manifest['events.columns']} FROM events ORDER BY occurred_at, id")]
        assert out.execute("SELECT hash FROM actions ORDER BY id DESC LIMIT 1").fetchone()[0] == manifest["chain_head_hash"]
    assert exported == ledger_events(db, ALL_TIME)
    assert (manifest["since"], manifest["chain_head_id"], manifest["datasets"]) == ("2020-01-01T00:00:00.000000Z", "4", "events,billing,actions")
    report = verify_export(path)
    assert report.ok, report.problems
    assert report.chain.verified == 4 and report.sha256 == result.sha256


def test_a_window_of_actions_is_a_contiguous_stretch_that_re_walks(db, tmp_path):
    with db.write() as session:
        entries = [audit.append(session, "test", "thing.done", f"thing:{n}") for n in range(6)]
    window = datasets.Window(entries[2].created_at, entries[4].created_at)
    export_sqlite(db, window, tmp_path / "part.sqlite", actor="test")
    report = verify_export(tmp_path / "part.sqlite")
    with sqlite3.connect(tmp_path / "part.sqlite") as out:
        ids = [i for (i,) in out.execute("SELECT id FROM actions ORDER BY id")]
    assert report.ok, report.problems
    assert ids == [3, 4] and report.chain.verified == 2


@pytest.mark.parametrize(("tamper", "problem"), [
    ("UPDATE events SET duration_ms = duration_ms + 1 WHERE id = 5", "events: content SHA-256"),
    ("DELETE FROM events WHERE id = 7", "events: 29 rows, the manifest says 30"),
    ("UPDATE actions SET actor = 'mallory' WHERE id = 2", "actions: chain broken at id 2 (hash mismatch)"),
    ("DELETE FROM actions WHERE id = 2", "actions: chain broken at id 3 (gap in ids)"),
    ("UPDATE manifest SET value = '0' WHERE name = 'events.rows'", "events: 30 rows, the manifest says 0"),
    ("CREATE TABLE extra (x)", "table extra is not in the manifest"),
])
def test_a_tampered_export_fails_verification(db, tmp_path, tamper, problem):
    add_events(db, 30)
    with db.write() as session:
        for n in range(3):
            audit.append(session, "test", "thing.done", f"thing:{n}")
    path = tmp_path / "audit.sqlite"
    export_sqlite(db, ALL_TIME, path, actor="test")
    assert verify_export(path).ok
    with sqlite3.connect(path) as out:
        out.execute(tamper)
    report = verify_export(path)
    assert not report.ok
    assert any(p.startswith(problem) for p in report.problems), report.problems


def test_a_rewritten_chain_with_fresh_hashes_still_fails_against_the_manifest_head(db, tmp_path):
    with db.write() as session:
        for n in range(3):
            audit.append(session, "test", "thing.done", f"thing:{n}")
    path = tmp_path / "audit.sqlite"
    export_sqlite(db, ALL_TIME, path, actor="test")
    with sqlite3.connect(path) as out:
        rows = out.execute("SELECT id, created_at, actor, action, subject, details, prev_hash FROM actions ORDER BY id").fetchall()
        prev = rows[0][6]
        for entry_id, created_at, actor, action, subject, details, _ in rows:
            actor = "mallory" if entry_id == 2 else actor
            digest = audit.entry_hash(prev, id=entry_id, created_at=datetime.fromisoformat(created_at), actor=actor,
                                      action=action, subject=subject, details=json.loads(details))
            out.execute("UPDATE actions SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?", (actor, prev, digest, entry_id))
            prev = digest
    report = verify_export(path)
    assert not report.ok
    assert report.chain.reason == "head does not match manifest" and report.chain.broken_id == 3

"""`billing-sync export` and `billing-sync audit verify [--export FILE]` from the command line."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from billing_sync import audit

from ..test_cli import run  # noqa: F401 - the CLI fixture
from .helpers import add_events, tampered


def test_export_csv_and_sqlite_then_verify_the_file(run, db, tmp_path):  # noqa: F811
    add_events(db, 40)
    out = tmp_path / "events.csv"
    result = run("export", "--dataset", "events", "--format", "csv", "--since", "2026-11-24",
                 "--until", "2026-11-25T00:00:00+00:00", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "exported events 40 rows" in result.output and "\r" not in result.output  # no progress bar off a TTY
    with open(out, newline="") as handle:
        assert len(list(csv.reader(handle))) == 41
    sqlite_file = tmp_path / "audit.sqlite"
    result = run("export", "--format", "sqlite", "--since", "2026-11-24", "--until", "2026-11-25", "-o", str(sqlite_file))
    assert result.exit_code == 0, result.output
    assert "events 40, billing 0, actions 1 rows" in result.output  # the CSV export's own audit entry
    verified = run("audit", "verify", "--export", str(sqlite_file))
    assert verified.exit_code == 0, verified.output
    assert "export verified" in verified.output and "rows: events 40, billing 0, actions 1" in verified.output
    report = json.loads(run("audit", "verify", "--export", str(sqlite_file), "--json").stdout)
    assert report["ok"] is True and report["rows"] == {"events": 40, "billing": 0, "actions": 1}


def test_a_tampered_export_file_exits_1_naming_the_problem(run, db, tmp_path):  # noqa: F811
    add_events(db, 5)
    path = tmp_path / "audit.sqlite"
    assert run("export", "--format", "sqlite", "--since", "2026-11-24", "--until", "2026-11-25", "-o", str(path)).exit_code == 0
    with sqlite3.connect(path) as out:
        out.execute("UPDATE events SET state = 'failed' WHERE id = 2")
    result = run("audit", "verify", "--export", str(path))
    assert result.exit_code == 1
    assert "FAILED: events: content SHA-256" in result.output and "export FAILED verification" in result.output


def test_verify_export_needs_no_configuration(run, tmp_path):  # noqa: F811
    result = run("audit", "verify", "--export", str(tmp_path / "missing.sqlite"), BILLING_SYNC_WEBHOOK_PASSWORD="")
    assert result.exit_code == 1 and "no such file" in result.output and "configuration" not in result.output
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    result = run("audit", "verify", "--export", str(tmp_path / "junk.sqlite"), BILLING_SYNC_WEBHOOK_PASSWORD="")
    assert result.exit_code == 1 and "not an export" in result.output


def test_verify_catches_an_altered_audit_row_by_its_id(run, db):  # noqa: F811
    with db.write() as session:
        for n in range(4):
            audit.append(session, "cli", "api_key.created", f"api_key:{n}", {"role": "viewer"})
    assert run("audit", "verify").exit_code == 0
    with tampered(db, "UPDATE audit_log SET details = '{\"role\": \"admin\"}' WHERE id = 3"):
        result = run("audit", "verify")
    assert result.exit_code == 1
    assert "BROKEN at id 3 (hash mismatch)" in result.output and "2 entries verified" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "csv", "--since", "2026-11-24", "--until", "2026-11-25"], "--format csv needs --dataset"),
    (["--format", "sqlite", "--dataset", "events", "--since", "2026-11-24", "--until", "2026-11-25"], "drop --dataset"),
    (["--format", "csv", "--dataset", "events", "--since", "2026-11-25", "--until", "2026-11-24"], "must be before --until"),
    (["--format", "csv", "--dataset", "events", "--since", "2026-11-24T08:00", "--until", "2026-11-25"], "has no UTC offset"),
    (["--format", "csv", "--dataset", "events", "--since", "yesterday", "--until", "2026-11-25"], "is not a date"),
    (["--format", "csv", "--dataset", "ledger", "--since", "2026-11-24", "--until", "2026-11-25"], "'ledger' is not one of"),
])
def test_export_arguments_are_checked_with_clear_errors(run, tmp_path, args, message):  # noqa: F811
    result = run("export", *args, "-o", str(tmp_path / "x.out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x.out").exists()

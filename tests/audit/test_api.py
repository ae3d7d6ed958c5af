"""GET /api/v1/audit/export.csv and /verify: roles, validation, streaming in constant memory."""

from __future__ import annotations

import csv
import io
import time
import tracemalloc

import pytest
from sqlalchemy import select

from billing_sync import audit
from billing_sync.audit import csv_records, reading
from billing_sync.models import AuditEntry

from .helpers import add_events, tampered

URL = "/api/v1/audit/export.csv?dataset=events&since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z"


def test_export_needs_finance(client, api_key):
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers=api_key("viewer")).status_code == 403
    assert client.get(URL, headers=api_key("finance")).status_code == 200
    assert client.get("/api/v1/audit/verify", headers=api_key("viewer")).status_code == 403


@pytest.mark.parametrize(("query", "field"), [
    ("dataset=nope&since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z", "dataset"),
    ("dataset=events&since=2026-11-24T00:00:00&until=2026-11-25T00:00:00Z", "since"),
    ("dataset=events&until=2026-11-25T00:00:00Z", "since"),
    ("dataset=events&since=2026-11-26T00:00:00Z&until=2026-11-25T00:00:00Z", "since"),
])
def test_a_bad_query_is_a_400_naming_the_field(client, api_key, query, field):
    response = client.get(f"/api/v1/audit/export.csv?{query}", headers=api_key("finance"))
    assert response.status_code == 400
    assert field in response.json["message"] and field in response.json["errors"]["query"]


def test_export_is_csv_matching_the_ledger_and_is_audited(client, api_key, db):
    add_events(db, 50, awkward=True)
    headers = api_key("finance")
    response = client.get(URL, headers=headers)
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert len(rows) == 51 and rows[0][:3] == ["id", "occurred_at", "conversation_id"]
    with db.read() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.exported")).one()
    assert entry.actor.startswith("api_key:") and entry.details["rows"] == {"events": 50}
    assert entry.details["completed"] is True


def _stream(client, headers):
    response = client.get(URL, headers=headers, buffered=False)
    assert response.status_code == 200
    return response


def test_the_first_bytes_go_out_before_the_last_row_is_read(client, api_key, db, monkeypatch):
    add_events(db, 1000)
    monkeypatch.setattr(reading, "BATCH_ROWS", 100)
    fetched = []
    original = csv_records.batches

    def counting(*args, **kwargs):
        for rows, data in original(*args, **kwargs):
            fetched.append(rows)
            yield rows, data

    monkeypatch.setattr(csv_records, "batches", counting)
    response = _stream(client, api_key("finance"))
    chunks = iter(response.response)
    assert next(chunks).startswith(b"id,occurred_at,") and fetched == []
    assert next(chunks).count(b"\r\n") == 100 and fetched == [100]
    assert sum(chunk.count(b"\r\n") for chunk in chunks) == 900 and sum(fetched) == 1000
    response.close()


def _peak_while_streaming(client, headers) -> tuple[int, int]:
    tracemalloc.start()
    try:
        response = _stream(client, headers)
        tracemalloc.reset_peak()
        rows = sum(chunk.count(b"\r\n") for chunk in response.response) - 1
        response.close()
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_does_not_grow_with_rows(client, api_key, db, monkeypatch):
    monkeypatch.setattr(reading, "BATCH_ROWS", 250)
    headers = api_key("finance")
    add_events(db, 2000)
    small_rows, small_peak = _peak_while_streaming(client, headers)
    add_events(db, 18000, start=2000, step_ms=3)
    started = time.monotonic()
    large_rows, large_peak = _peak_while_streaming(client, headers)
    assert (small_rows, large_rows) == (2000, 20000)
    # Ten times the rows; a buffered response would need ten times the memory (~2.5 MB more).
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)
    assert time.monotonic() - started < 60


def test_an_abandoned_stream_is_recorded_as_incomplete(client, api_key, db, monkeypatch):
    add_events(db, 600)
    monkeypatch.setattr(reading, "BATCH_ROWS", 100)
    response = _stream(client, api_key("finance"))
    chunks = iter(response.response)
    next(chunks), next(chunks)
    response.close()
    with db.read() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.exported")).one()
    assert entry.details["completed"] is False and entry.details["rows"] == {"events": 100}


def test_verify_reports_the_head_or_the_first_broken_link(client, api_key, db):
    headers = api_key("finance")  # entry 1: the key
    with db.write() as session:
        for n in range(3):
            audit.append(session, "test", "thing.done", f"thing:{n}")
    good = client.get("/api/v1/audit/verify", headers=headers).json
    assert good["ok"] is True and good["verified"] == 4 and len(good["head"]) == 64
    with tampered(db, "UPDATE audit_log SET subject = 'thing:forged' WHERE id = 3"):
        broken = client.get("/api/v1/audit/verify", headers=headers).json
    assert broken["ok"] is False and broken["broken_id"] == 3 and broken["reason"] == "hash mismatch"
    assert broken["expected"] != broken["found"] and broken["verified"] == 2

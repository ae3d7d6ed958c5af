"""The `billing` dataset: records with their delivery state, in the CSV and the SQLite export."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select

from billing_sync.audit import datasets
from billing_sync.audit.export_verify import verify_export
from billing_sync.audit.exports import export_csv
from billing_sync.audit.sqlite_export import export_sqlite
from billing_sync.models import BillingRecord, OutboxMessage

from .test_exports import ALL_TIME, iso, read_csv


def _charge_some(client, webhook_auth, events):
    for duration in (12_000, 61_500, 1):
        assert client.post("/webhooks/genesys", json=events.lifecycle(duration=duration), headers=webhook_auth).status_code == 200
    # A failed playback is recorded but never charged: it must not appear.
    client.post("/webhooks/genesys", json=events.lifecycle(terminal="failed"), headers=webhook_auth)


def _ledger(db) -> list[list[str]]:
    with db.read() as session:
        rows = session.execute(
            select(BillingRecord, OutboxMessage).join(OutboxMessage, OutboxMessage.record_id == BillingRecord.id)
            .order_by(BillingRecord.created_at, BillingRecord.id)
        ).all()
    return [[str(r.id), iso(r.created_at), r.kind, r.playback_id, r.conversation_id, str(r.duration_ms),
             str(r.billable_seconds), r.rate_per_minute, str(r.amount_minor), r.currency, r.provenance, "",
             r.idempotency_key, o.status, str(o.attempts), ""] for r, o in rows]


def test_billing_csv_round_trips_records_and_delivery_state(client, webhook_auth, events, db, tmp_path):
    _charge_some(client, webhook_auth, events)
    result = export_csv(db, datasets.get("billing"), ALL_TIME, tmp_path / "billing.csv", actor="test")
    rows = read_csv(tmp_path / "billing.csv")
    assert rows[0] == list(datasets.get("billing").column_names)
    assert rows[1:] == _ledger(db)
    assert result.rows == {"billing": 3}
    assert sorted(int(r[8]) for r in rows[1:]) == [1, 12, 62]  # 0.60/min: 1 s, 12 s, 62 s


def test_billing_is_in_the_sqlite_export_and_verifies(client, webhook_auth, events, db, tmp_path):
    _charge_some(client, webhook_auth, events)
    path = tmp_path / "all.sqlite"
    export_sqlite(db, ALL_TIME, path, actor="test")
    with sqlite3.connect(path) as exported:
        assert exported.execute("SELECT count(*) FROM billing").fetchone() == (3,)
        assert exported.execute("SELECT DISTINCT delivery_status FROM billing").fetchall() == [("pending",)]
    assert verify_export(path).ok

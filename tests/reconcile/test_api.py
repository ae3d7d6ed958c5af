"""POST /api/v1/reconciliations, GET /{id}, /{id}/discrepancies; GET /api/v1/reports/completion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync import create_app
from billing_sync.keys import create_key

from .conftest import SINCE, UNTIL, Ledger

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


@pytest.fixture
def api(settings, analytics):
    """A test client whose Genesys analytics is the fake, and a key maker."""
    app = create_app(settings.replace(reconcile_grace_s=0, reconcile_analytics_lag_s=0), genesys_client=analytics)
    app.config["TESTING"] = True
    db = app.extensions["billing_sync"].db

    def key(role: str) -> dict:
        with db.write() as session:
            _, secret = create_key(session, role=role, name=role, actor="test")
        return {"Authorization": f"Bearer {secret}"}

    yield app.test_client(), key, Ledger(db)
    db.dispose()


def test_a_run_is_created_read_and_its_discrepancies_paged(api, analytics):
    client, key, ledger = api
    finance = key("finance")
    lost = [ledger.playback("stream", conversation_id=f"conv-{n}", minute=n) for n in range(3)]
    ledger.playback("webhook", conversation_id="conv-9", minute=9)
    analytics.report("conv-lost", 1, 1, 4_000)
    answer = client.post("/api/v1/reconciliations", json=WINDOW, headers=finance)
    assert answer.status_code == 201, answer.json
    run = answer.json
    assert run["counts"] == {"analytics_count_mismatch": {"open": 1}, "analytics_duration_mismatch": {"open": 1},
                             "missing_stream": {"info": 1}, "missing_webhook": {"healed": 3}}
    assert (run["healed"], run["open"], run["info"], run["pending"]) == (3, 2, 1, 0)
    assert run["requested_by"].startswith("api_key:") and run["analytics_conversations"] == 1
    assert analytics.asked == [(SINCE, UNTIL)]
    assert client.get(f"/api/v1/reconciliations/{run['id']}", headers=finance).json == run

    url = f"/api/v1/reconciliations/{run['id']}/discrepancies"
    first = client.get(url, query_string={"kind": "missing_webhook", "limit": 2}, headers=finance).json
    second = client.get(url, query_string={"kind": "missing_webhook", "limit": 2, "cursor": first["next_cursor"]},
                        headers=finance).json
    assert second["next_cursor"] is None
    items = first["items"] + second["items"]
    assert sorted(i["playback_id"] for i in items) == sorted(lost)
    assert all(i["status"] == "healed" and i["record_id"] for i in items)
    opened = client.get(url, query_string={"status": "open"}, headers=finance).json["items"]
    assert {(i["kind"], i["conversation_id"], i["analytics_count"], i["ledger_count"]) for i in opened} == {
        ("analytics_count_mismatch", "conv-lost", 1, 0), ("analytics_duration_mismatch", "conv-lost", 1, 0)}


@pytest.mark.parametrize(("body", "field"), [
    ({"since": SINCE.isoformat()}, "until"),
    ({**WINDOW, "since": UNTIL.isoformat(), "until": SINCE.isoformat()}, "since"),
    ({**WINDOW, "since": "2026-11-24T02:00:00"}, "since"),
    ({**WINDOW, "grace_s": -1}, "grace_s"),
    # Found by the API fuzz: 8,442 years of 7-day analytics queries, then a 502.
    ({"since": "0273-11-20T13:10:32+17:22", "until": "8715-07-15T04:51:37Z"}, "since"),
])
def test_a_bad_window_is_400_naming_the_field(api, body, field):
    client, key, _ = api
    answer = client.post("/api/v1/reconciliations", json=body, headers=key("finance"))
    assert answer.status_code == 400 and field in answer.json["message"]


def test_completion_report_counts_playbacks_before_the_year_1000(api, analytics):
    # The ledger's buckets read "0273-11-20T02", the report's own keys were "273-11-20T02".
    client, key, ledger = api
    long_ago = datetime(273, 11, 20, 2, tzinfo=UTC)
    ledger.both(conversation_id="conv-1", minute=int((long_ago - SINCE).total_seconds() // 60) + 5)
    query = {"since": long_ago.isoformat(), "until": long_ago.replace(hour=3).isoformat()}
    items = client.get("/api/v1/reports/completion", query_string=query, headers=key("finance")).json["items"]
    assert [(r["interval"], r["ledger_playbacks"]) for r in items] == [("0273-11-20T02", 1), ("total", 1)]


def test_completion_report_reaches_the_last_hour_of_the_calendar(api):
    # Found by the API fuzz: stepping past the last bucket passed datetime.max (a 500).
    client, key, _ = api
    query = {"since": "9999-12-31T22:00:00Z", "until": "9999-12-31T23:59:59Z"}
    answer = client.get("/api/v1/reports/completion", query_string=query, headers=key("finance"))
    assert answer.status_code == 200, answer.json
    assert [(r["interval"], r["until"]) for r in answer.json["items"]] == [
        ("9999-12-31T22", "9999-12-31T23:00:00+00:00"), ("9999-12-31T23", "9999-12-31T23:59:59+00:00"),
        ("total", "9999-12-31T23:59:59+00:00")]


def test_roles_and_unknown_runs(api):
    client, key, _ = api
    assert client.post("/api/v1/reconciliations", json=WINDOW, headers=key("viewer")).status_code == 403
    assert client.post("/api/v1/reconciliations", json=WINDOW).status_code == 401
    finance = key("finance")
    assert client.get("/api/v1/reconciliations/999", headers=finance).status_code == 404
    assert client.get("/api/v1/reconciliations/999/discrepancies", headers=finance).status_code == 404
    run = client.post("/api/v1/reconciliations", json=WINDOW, headers=key("admin")).json
    answer = client.get(f"/api/v1/reconciliations/{run['id']}/discrepancies", query_string={"kind": "nope"},
                        headers=finance)
    assert answer.status_code == 400 and "kind" in answer.json["message"]


def test_completion_report_puts_ledger_and_analytics_side_by_side(api, analytics):
    client, key, ledger = api
    ledger.both(conversation_id="conv-1", minute=5)
    ledger.both(conversation_id="conv-1", minute=6, state="stopped")
    ledger.both(conversation_id="conv-2", minute=65)
    analytics.report("conv-1", 2, 1, 24_000)
    analytics.report("conv-2", 2, 2, 24_000, started_at=SINCE.replace(hour=3, minute=1))
    query = {"since": SINCE.isoformat(), "until": SINCE.replace(hour=4).isoformat(), "granularity": "hour"}
    answer = client.get("/api/v1/reports/completion", query_string=query, headers=key("finance"))
    assert answer.status_code == 200, answer.json
    rows = [(r["interval"], r["ledger_playbacks"], r["ledger_completion_rate"], r["analytics_playbacks"],
             r["analytics_completion_rate"]) for r in answer.json["items"]]
    assert rows == [("2026-11-24T02", 2, 0.5, 2, 0.5), ("2026-11-24T03", 1, 1.0, 2, 1.0),
                    ("total", 3, 0.666667, 4, 0.75)]
    daily = client.get("/api/v1/reports/completion", query_string={**query, "granularity": "day"},
                       headers=key("finance")).json["items"]
    assert [r["interval"] for r in daily] == ["2026-11-24", "total"]
    assert client.get("/api/v1/reports/completion", query_string={**query, "granularity": "week"},
                      headers=key("finance")).status_code == 400
    assert client.get("/api/v1/reports/completion", query_string=query, headers=key("viewer")).status_code == 403

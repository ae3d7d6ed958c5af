"""GET /api/v1/billing/records and /outbox: finance+, filters, cursors, one error shape."""

from __future__ import annotations

import pytest

from .conftest import charge


def test_records_need_finance(client, api_key):
    assert client.get("/api/v1/billing/records").status_code == 401
    answer = client.get("/api/v1/billing/records", headers=api_key("viewer"))
    assert answer.status_code == 403 and set(answer.get_json()) == {"code", "status", "message", "errors"}
    assert client.get("/api/v1/billing/outbox", headers=api_key("viewer")).status_code == 403
    for role in ("finance", "admin"):
        assert client.get("/api/v1/billing/records", headers=api_key(role)).status_code == 200


def test_records_page_with_a_cursor_and_filter(client, webhook_auth, events, api_key):
    playbacks = charge(client, webhook_auth, events, 7)
    finance = api_key("finance")
    seen, cursor = [], None
    while True:
        url = "/api/v1/billing/records?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=finance).get_json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(r["playback_id"] for r in seen) == sorted(playbacks) and len(seen) == 7
    assert [r["id"] for r in seen] == sorted(r["id"] for r in seen)
    assert set(seen[0]) == {"id", "kind", "playback_id", "conversation_id", "duration_ms", "billable_seconds",
                            "rate_per_minute", "amount_minor", "currency", "provenance", "corrects", "created_at"}
    one = client.get(f"/api/v1/billing/records?playback_id={playbacks[3]}", headers=finance).get_json()["items"]
    assert [r["playback_id"] for r in one] == [playbacks[3]]
    by_conversation = client.get("/api/v1/billing/records?conversation_id=conv-1&kind=charge", headers=finance)
    assert {r["conversation_id"] for r in by_conversation.get_json()["items"]} == {"conv-1"}
    assert client.get("/api/v1/billing/records?kind=adjustment", headers=finance).get_json()["items"] == []
    later = client.get("/api/v1/billing/records?since=2999-01-01T00:00:00Z", headers=finance).get_json()
    assert later == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(("query", "field"), [
    ("kind=refund", "kind"),
    ("limit=501", "limit"),
    ("since=yesterday", "since"),
    ("cursor=%%%", "cursor"),
])
def test_bad_record_queries_are_400_naming_the_field(client, api_key, query, field):
    answer = client.get(f"/api/v1/billing/records?{query}", headers=api_key("finance"))
    body = answer.get_json()
    assert answer.status_code == 400 and field in body["message"]
    assert set(body) == {"code", "status", "message", "errors"}


def test_outbox_lists_by_status(client, webhook_auth, events, api_key):
    charge(client, webhook_auth, events, 2)
    finance = api_key("finance")
    pending = client.get("/api/v1/billing/outbox?status=pending", headers=finance).get_json()["items"]
    assert [(m["status"], m["attempts"], m["webhook_id"].startswith("charge:")) for m in pending] == [
        ("pending", 0, True)] * 2
    assert client.get("/api/v1/billing/outbox?status=dead", headers=finance).get_json()["items"] == []
    bad = client.get("/api/v1/billing/outbox?status=lost", headers=finance)
    assert bad.status_code == 400 and "status" in bad.get_json()["message"]

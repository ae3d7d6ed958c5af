"""Request and webhook metrics counted by the app as it answers (one process; gunicorn: tests/e2e)."""

from __future__ import annotations

import pytest

from .conftest import scrape

INGEST = {"route": "/webhooks/genesys", "method": "POST"}


def test_webhook_events_and_requests_are_counted_by_result_and_status(client, webhook_auth, events):
    before = scrape(client)
    first = [events.event() for _ in range(3)]
    assert client.post("/webhooks/genesys", json=first, headers=webhook_auth).get_json() == \
        {"accepted": 3, "duplicates": 0}
    assert client.post("/webhooks/genesys", json=[*first[:2], events.event()], headers=webhook_auth).get_json() == \
        {"accepted": 1, "duplicates": 2}
    assert client.post("/webhooks/genesys", json={"eventBody": {}}, headers=webhook_auth).status_code == 400
    assert client.post("/webhooks/genesys", json=first).status_code == 401
    after = scrape(client)

    def grew(name, **labels):
        return after.get(name, **labels) - before.get(name, **labels)

    assert grew("billing_sync_webhook_events_total", result="accepted") == 4
    assert grew("billing_sync_webhook_events_total", result="duplicate") == 2
    assert grew("billing_sync_http_requests_total", **INGEST, status="200") == 2
    assert grew("billing_sync_http_requests_total", **INGEST, status="400") == 1
    assert grew("billing_sync_http_requests_total", **INGEST, status="401") == 1
    assert grew("billing_sync_http_request_duration_seconds_count", **INGEST) == 4
    assert grew("billing_sync_http_request_duration_seconds_bucket", **INGEST, le="+Inf") == 4
    assert grew("billing_sync_http_request_duration_seconds_sum", **INGEST) > 0
    # The scrape between the two counts itself once, and is the one request in flight now.
    assert grew("billing_sync_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert after.value("billing_sync_http_requests_in_flight") == 1


def test_routes_are_templates_and_odd_methods_one_label(client, api_key):
    headers = api_key("viewer")
    before = scrape(client)
    for playback_id in ("a", "b", "c"):
        assert client.get(f"/api/v1/playbacks/{playback_id}", headers=headers).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.open("/healthz", method="BREW").status_code == 405
    after = scrape(client)

    def grew(**labels):
        return after.get("billing_sync_http_requests_total", **labels) - \
            before.get("billing_sync_http_requests_total", **labels)

    assert grew(route="/api/v1/playbacks/<text_id:playback_id>", method="GET", status="404") == 3
    assert grew(route="unmatched", method="GET", status="404") == 1
    assert grew(route="unmatched", method="other", status="405") == 1


@pytest.mark.parametrize("name", [
    "billing_sync_webhook_events", "billing_sync_http_requests", "billing_sync_http_request_duration_seconds",
    "billing_sync_http_requests_in_flight", "billing_sync_outbox_messages", "billing_sync_outbox_due_messages",
    "billing_sync_outbox_oldest_due_age_seconds", "billing_sync_delivery_attempts", "billing_sync_delivery_failures",
    "billing_sync_stream_listener_state", "billing_sync_reconciliation_discrepancies",
    "billing_sync_metrics_database_up",
])
def test_every_family_has_help_text(client, name):
    family = scrape(client).families[name]
    assert family.documentation and len(family.documentation) > 20


def test_metrics_is_in_the_openapi_document_as_text(client):
    answer = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"]["responses"]["200"]
    assert answer["content"] == {"text/plain": {"schema": {"type": "string"}}}

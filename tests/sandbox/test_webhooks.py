"""Webhook registration and delivery: Basic auth, retries, duplicate and drop faults."""

from __future__ import annotations

from .conftest import basic, new_call, play, register_webhook, truth_of, wait_for

SHORT = "https://m.example.com/a.wav?duration_ms=3000"  # started + completed: two events


def test_registration_crud_never_shows_the_password(api, receiver):
    created = register_webhook(api, receiver.url)
    assert "authPassword" not in created
    assert created["selfUri"] == f"/api/v2/webhooks/{created['id']}"
    assert created["authUsername"] == "genesys" and created["enabled"] is True
    listing = api.get("/api/v2/webhooks").json()
    assert listing["total"] == 1 and listing["pageSize"] == 25 and listing["pageNumber"] == 1
    assert listing["entities"][0]["id"] == created["id"]
    updated = api.put(f"/api/v2/webhooks/{created['id']}",
                      json={**{k: v for k, v in created.items() if k not in ("id", "selfUri")},
                            "enabled": False})
    assert updated.status_code == 200 and updated.json()["enabled"] is False
    assert "authPassword" not in updated.json()
    assert api.delete(f"/api/v2/webhooks/{created['id']}").status_code == 204
    assert api.get(f"/api/v2/webhooks/{created['id']}").status_code == 404


def test_registration_names_the_bad_field(api):
    response = api.post("/api/v2/webhooks", json={"name": "x", "eventFilters": ["nope"],
                                                  "address": "https://example.com/h"})
    assert response.status_code == 400
    assert response.json()["details"][0]["fieldName"] == "eventFilters"


def test_delivery_carries_basic_auth_and_the_envelope(api, control, receiver):
    register_webhook(api, receiver.url)
    call = new_call(control)
    playback_id = play(api, call, SHORT).json()["id"]
    wait_for(lambda: len(receiver.accepted()) == 2, what="two deliveries")
    for request in receiver.accepted():
        assert request["headers"]["Authorization"] == basic("genesys", "s3cret")
        assert request["headers"]["Content-Type"] == "application/json"
        body = request["body"]
        assert body["topicName"] == f"v2.conversations.{call}.playback"
        assert body["version"] == "2" and body["metadata"]["CorrelationId"]
        assert body["eventBody"]["playbackId"] == playback_id


def test_failed_deliveries_are_retried_with_the_same_event(api, control, receiver):
    receiver.statuses = [500, 503, 500]
    register_webhook(api, receiver.url)
    play(api, new_call(control), SHORT)
    wait_for(lambda: len(receiver.accepted()) == 2, timeout=5, what="deliveries after retries")
    ids = [r["body"]["eventBody"]["id"] for r in receiver.all()]
    assert len(ids) == 5 and len(set(ids)) == 2


def test_duplicate_fault_delivers_each_event_twice(api, control, receiver):
    control.put("/faults", json={"webhook_duplicate_rate": 1.0, "webhook_reorder": True})
    register_webhook(api, receiver.url)
    play(api, new_call(control), SHORT)
    wait_for(lambda: len(receiver.accepted()) == 4, what="four deliveries")
    ids = [r["body"]["eventBody"]["id"] for r in receiver.accepted()]
    assert sorted(ids.count(i) for i in set(ids)) == [2, 2]


def test_drop_fault_loses_the_events(api, control, receiver):
    control.put("/faults", json={"webhook_drop_rate": 1.0})
    register_webhook(api, receiver.url)
    call = new_call(control)
    playback_id = play(api, call, SHORT).json()["id"]
    wait_for(lambda: truth_of(control, playback_id)["state"] == "completed", what="completed")
    control.put("/faults", json={"webhook_drop_rate": 0.0})
    marker = play(api, call, SHORT).json()["id"]
    wait_for(lambda: len(receiver.accepted()) == 2, what="the marker's deliveries")
    assert {r["body"]["eventBody"]["playbackId"] for r in receiver.all()} == {marker}


def test_disabled_webhooks_get_nothing(api, control, receiver):
    register_webhook(api, receiver.url, enabled=False)
    enabled = register_webhook(api, receiver.url, name="other", authScheme="none")
    play(api, new_call(control), SHORT)
    wait_for(lambda: len(receiver.accepted()) == 2, what="deliveries to the enabled hook")
    assert all("Authorization" not in r["headers"] for r in receiver.accepted())
    assert enabled["authScheme"] == "none"

"""GET /api/v1/playbacks: API keys, roles, filters, cursor pagination."""

from __future__ import annotations


import pytest

from billing_sync.models import ApiKey, utcnow


def ingest(client, webhook_auth, payload):
    assert client.post("/webhooks/genesys", json=payload, headers=webhook_auth).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer bsk_unknown"}, {"Authorization": "Basic abc"}])
def test_reads_need_a_valid_key(client, headers):
    response = client.get("/api/v1/playbacks", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused(app, client, api_key):
    headers = api_key("viewer")
    assert client.get("/api/v1/playbacks", headers=headers).status_code == 200
    with app.extensions["billing_sync"].db.write() as session:
        session.query(ApiKey).update({"revoked_at": utcnow()})
    assert client.get("/api/v1/playbacks", headers=headers).status_code == 401


@pytest.mark.parametrize("role", ["viewer", "finance", "admin"])
def test_every_role_may_read(client, api_key, role):
    assert client.get("/api/v1/playbacks", headers=api_key(role)).status_code == 200


def test_auth_is_checked_before_arguments(client):
    assert client.get("/api/v1/playbacks?limit=0").status_code == 401


def test_one_playback_with_its_events(client, webhook_auth, api_key, events):
    lifecycle = events.lifecycle(conversation_id="conv-9", duration=6000)
    ingest(client, webhook_auth, list(reversed(lifecycle)))
    playback_id = lifecycle[0]["playbackId"]
    response = client.get(f"/api/v1/playbacks/{playback_id}", headers=api_key())
    assert response.status_code == 200
    body = response.json
    assert {k: body[k] for k in ("playback_id", "conversation_id", "state", "duration_ms", "requested_by")} == {
        "playback_id": playback_id, "conversation_id": "conv-9", "state": "completed",
        "duration_ms": 6000, "requested_by": None,
    }
    assert body["media_url"] == "https://media.example.com/welcome.wav"
    assert body["started_at"].startswith("2026-11-24T02:00:01") and body["ended_at"].startswith("2026-11-24T02:00:03")
    assert [e["sequence"] for e in body["events"]] == [1, 2, 3]
    assert [e["event_id"] for e in body["events"]] == [e["id"] for e in lifecycle]
    assert set(body["events"][0]) == {"event_id", "source", "state", "duration_ms", "sequence", "occurred_at", "received_at"}
    assert body["events"][0]["source"] == "webhook"


def test_unknown_playback_is_404(client, api_key):
    response = client.get("/api/v1/playbacks/nope", headers=api_key())
    assert response.status_code == 404
    assert set(response.json) == {"code", "status", "message", "errors"}


def test_filters(client, webhook_auth, api_key, events):
    a = events.lifecycle(conversation_id="conv-a")
    b = events.lifecycle(conversation_id="conv-b", terminal="stopped")
    c = [events.event(conversation_id="conv-a", state="started")]
    ingest(client, webhook_auth, a + b + c)
    headers = api_key()

    def ids(query):
        response = client.get(f"/api/v1/playbacks?{query}", headers=headers)
        assert response.status_code == 200, response.json
        return {item["playback_id"] for item in response.json["items"]}

    assert ids("conversation_id=conv-a") == {a[0]["playbackId"], c[0]["playbackId"]}
    assert ids("state=stopped") == {b[0]["playbackId"]}
    assert ids("conversation_id=conv-a&state=started") == {c[0]["playbackId"]}
    assert ids("since=2026-11-24T02:00:00Z&until=2026-11-24T03:00:00Z") == {a[0]["playbackId"], b[0]["playbackId"], c[0]["playbackId"]}
    assert ids("since=2026-11-24T02:00:02Z") == set()


def test_cursor_pagination_walks_every_playback_once(client, webhook_auth, api_key, events):
    created = [events.event() for _ in range(23)]
    ingest(client, webhook_auth, created)
    headers, seen, cursor, pages = api_key(), [], None, 0
    while True:
        query = "limit=5" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/api/v1/playbacks?{query}", headers=headers).json
        seen += [item["playback_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert sorted(seen) == sorted(e["playbackId"] for e in created) and len(set(seen)) == 23


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("state=sleeping", "state"),
    ("since=tomorrow", "since"),
    ("since=2026-11-24T02:00:00", "since"),
    ("cursor=%%%", "cursor"),
    ("cursor=eyJ4IjoxfQ", "cursor"),
    ("since=2026-11-25T00:00:00Z&until=2026-11-24T00:00:00Z", "since"),
])
def test_bad_query_is_400_naming_the_field(client, api_key, query, field):
    response = client.get(f"/api/v1/playbacks?{query}", headers=api_key())
    assert response.status_code == 400, response.json
    assert field in response.json["message"]
    assert set(response.json) == {"code", "status", "message", "errors"}

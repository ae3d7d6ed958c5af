"""POST /webhooks/genesys: shapes, dedupe, ordering, conflicts, bad input, credentials."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from billing_sync.api.webhooks import IngestResultSchema
from billing_sync.models import AuditEntry, Playback, PlaybackEvent


def post(client, payload, headers, **kwargs):
    return client.post("/webhooks/genesys", json=payload, headers=headers, **kwargs)


def count(db, model):
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def playback(db, playback_id):
    with db.read() as session:
        return session.scalars(select(Playback).where(Playback.playback_id == playback_id)).one()


def test_the_answer_is_the_documented_schema(client, webhook_auth, events):
    body = events.event(state="started")
    post(client, body, webhook_auth)
    response = post(client, [body, events.event(state="started")], webhook_auth)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert IngestResultSchema().load(response.json) == response.json == {"accepted": 1, "duplicates": 1}
    documented = client.get("/openapi.json").json["paths"]["/webhooks/genesys"]["post"]["responses"]["200"]
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/IngestResult"}


@pytest.mark.parametrize("shape", ["bare", "notification", "eventbridge"])
def test_each_shape_is_accepted(client, webhook_auth, events, db, shape):
    body = events.event(state="started")
    payload = {"bare": body, "notification": events.notification(body), "eventbridge": events.eventbridge(body)}[shape]
    response = post(client, payload, webhook_auth)
    assert response.status_code == 200, response.json
    assert response.json == {"accepted": 1, "duplicates": 0}
    row = playback(db, body["playbackId"])
    assert (row.state, row.conversation_id, row.last_sequence) == ("started", "conv-1", 1)
    with db.read() as session:
        stored = session.scalars(select(PlaybackEvent)).one()
    assert stored.source == "webhook" and stored.source_event_id == body["id"]
    assert stored.payload == payload


def test_same_event_through_every_shape_is_one_ledger_event(client, webhook_auth, events, db):
    body = events.event(state="completed", duration=5000)
    shapes = [body, events.notification(body), events.eventbridge(body)]
    first = post(client, shapes, webhook_auth)
    assert first.json == {"accepted": 1, "duplicates": 2}
    for shape in shapes:
        assert post(client, shape, webhook_auth).json == {"accepted": 0, "duplicates": 1}
    assert count(db, PlaybackEvent) == 1


def test_event_without_id_dedupes_on_eventbridge_id_then_content(client, webhook_auth, events, db):
    body = events.event(event_id=None)
    del body["id"]
    bridged = events.eventbridge(body, envelope_id="eb-1")
    assert post(client, bridged, webhook_auth).json == {"accepted": 1, "duplicates": 0}
    assert post(client, bridged, webhook_auth).json == {"accepted": 0, "duplicates": 1}
    assert post(client, body, webhook_auth).json == {"accepted": 1, "duplicates": 0}
    reordered = json.loads(json.dumps(dict(reversed(list(body.items())))))
    assert post(client, reordered, webhook_auth).json == {"accepted": 0, "duplicates": 1}
    with db.read() as session:
        ids = set(session.scalars(select(PlaybackEvent.source_event_id)))
    assert "eb-1" in ids and any(i.startswith("sha256:") for i in ids)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("batched", [True, False])
def test_out_of_order_delivery_ends_in_the_terminal_state(client, webhook_auth, events, db, seed, batched):
    lifecycle = events.lifecycle(terminal="stopped", duration=8000)
    progress = events.event(playback_id=lifecycle[0]["playbackId"], state="progress", sequence=2, duration=4000)
    deliveries = lifecycle + [lifecycle[1], progress]  # a redelivery and a same-sequence twin
    random.Random(seed).shuffle(deliveries)
    if batched:
        post(client, deliveries, webhook_auth)
    else:
        for item in deliveries:
            assert post(client, item, webhook_auth).status_code == 200
    row = playback(db, lifecycle[0]["playbackId"])
    assert (row.state, row.duration_ms, row.last_sequence) == ("stopped", 8000, 3)
    assert row.ended_at is not None and row.started_at <= row.ended_at
    assert count(db, PlaybackEvent) == 4


def test_late_progress_never_regresses(client, webhook_auth, events, db):
    started, progress, completed = events.lifecycle(duration=9000)
    post(client, [started, completed], webhook_auth)
    post(client, progress, webhook_auth)
    late = events.event(playback_id=started["playbackId"], state="progress", sequence=7, duration=100)
    post(client, late, webhook_auth)
    row = playback(db, started["playbackId"])
    assert (row.state, row.duration_ms) == ("completed", 9000)


def test_progress_moves_forward_by_sequence(client, webhook_auth, events, db):
    pid = "pb-forward"
    post(client, events.event(playback_id=pid, state="progress", sequence=4, duration=4000), webhook_auth)
    post(client, events.event(playback_id=pid, state="progress", sequence=2, duration=2000), webhook_auth)
    row = playback(db, pid)
    assert (row.state, row.last_sequence, row.duration_ms) == ("progress", 4, 4000)


@pytest.mark.parametrize("same_request", [True, False])
def test_conflicting_terminal_is_kept_audited_and_changes_nothing(client, webhook_auth, events, db, same_request):
    started, _, completed = events.lifecycle(duration=7000)
    conflicting = events.event(playback_id=started["playbackId"], state="failed", sequence=4, duration=1000)
    if same_request:
        post(client, [started, completed, conflicting], webhook_auth)
    else:
        post(client, [started, completed], webhook_auth)
        post(client, conflicting, webhook_auth)
    row = playback(db, started["playbackId"])
    assert (row.state, row.duration_ms) == ("completed", 7000)
    assert count(db, PlaybackEvent) == 3
    with db.read() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "playback.terminal_conflict")).one()
    assert entry.subject == f"playback:{started['playbackId']}"
    assert entry.details["applied"] == {"state": "completed", "duration_ms": 7000}
    assert entry.details["conflicting"]["event_id"] == conflicting["id"]


def test_an_agreeing_second_terminal_is_not_a_conflict(client, webhook_auth, events, db):
    started, _, completed = events.lifecycle(duration=7000)
    twin = dict(completed, id="another-delivery-id")
    post(client, [started, completed], webhook_auth)
    post(client, twin, webhook_auth)
    with db.read() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert "playback.terminal_conflict" not in actions


BAD_CREDENTIALS = [
    {},
    {"Authorization": "Basic " + base64.b64encode(b"genesys:wrong").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"someone:else").decode()},
    {"Authorization": "Bearer token"},
    {"Authorization": "Basic !!!"},
]


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_wrong_credentials_get_401_and_write_nothing(client, events, db, headers):
    response = post(client, events.event(), headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.json["code"] == 401 and response.json["message"]
    assert count(db, PlaybackEvent) == 0


def _with(body, **changes):
    body = dict(body)
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return body


SCHEMA_ERRORS = [
    ({"playbackId": ...}, "playbackId"),
    ({"state": "paused"}, "state"),
    ({"duration": "12"}, "duration"),
    ({"duration": -1}, "duration"),
    ({"sequence": 1.5}, "sequence"),
    ({"timestamp": "2026-11-24T02:00:00"}, "timestamp"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"eventType": "conversation:voice:dtmf"}, "eventType"),
    ({"conversationId": ""}, "conversationId"),
    ({"playbackId": "x" * 65}, "playbackId"),
    # Found by the API fuzz, each a 500 before: past PostgreSQL's INTEGER (both databases: the
    # SQLite driver cannot bind the 64-bit overflow either), outside the calendar once in UTC,
    # and NUL characters, which PostgreSQL text and JSON cannot hold, in any field or key.
    ({"duration": 2**31}, "duration"),
    ({"sequence": 2**63}, "sequence"),
    ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    ({"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
    ({"playbackId": "p\x00"}, "playbackId"),
    ({"mediaUrl": "https://media.example.com/a\x00.wav"}, "mediaUrl"),
    ({"vendorNote": "\x00"}, "vendorNote"),
]


@pytest.mark.parametrize(("changes", "field"), SCHEMA_ERRORS)
def test_schema_errors_name_the_field(client, webhook_auth, events, db, changes, field):
    response = post(client, _with(events.event(), **changes), webhook_auth)
    assert response.status_code == 400
    assert field in response.json["message"]
    assert field in json.dumps(response.json["errors"])
    assert count(db, PlaybackEvent) == 0


def test_batch_error_names_index_and_writes_nothing(client, webhook_auth, events, db):
    good = [events.event() for _ in range(3)]
    bad = events.notification(_with(events.event(), duration=...))
    response = post(client, [*good, bad, events.event()], webhook_auth)
    assert response.status_code == 400
    assert "index 3" in response.json["message"] and "eventBody.duration" in response.json["message"]
    assert "3" in response.json["errors"]
    assert count(db, PlaybackEvent) == 0 and count(db, Playback) == 0


def test_a_nul_in_a_batch_names_its_index_and_writes_nothing(client, webhook_auth, events, db):
    response = post(client, [events.event(), events.notification(events.event(conversation_id="c\x00"))], webhook_auth)
    assert response.status_code == 400 and "index 1" in response.json["message"]
    assert count(db, PlaybackEvent) == 0


def test_any_offset_is_stored_as_its_instant(client, webhook_auth, events, db):
    # Found by the API fuzz: PostgreSQL refuses offsets past ±15:59, so +16:00 was a 500 there.
    body = events.event(state="started", timestamp="2026-11-24T18:00:00+16:00")
    assert post(client, body, webhook_auth).status_code == 200
    with db.read() as session:
        stored = session.scalars(select(PlaybackEvent)).one()
    assert stored.occurred_at == datetime(2026, 11, 24, 2, tzinfo=UTC)


def test_topic_must_name_the_event_conversation(client, webhook_auth, events, db):
    envelope = events.notification(events.event())
    envelope["topicName"] = "v2.conversations.someone-else.playback"
    response = post(client, envelope, webhook_auth)
    assert response.status_code == 400 and "topicName" in response.json["message"]


@pytest.mark.parametrize("payload", [[], [1], "text", 42, None])
def test_malformed_shapes_are_400(client, webhook_auth, db, payload):
    response = client.post("/webhooks/genesys", data=json.dumps(payload),
                           headers={**webhook_auth, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert count(db, PlaybackEvent) == 0


def test_non_json_body_is_400(client, webhook_auth, db):
    response = client.post("/webhooks/genesys", data=b"{not json", headers={**webhook_auth, "Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json["message"]


def test_non_json_content_type_is_415(client, webhook_auth, events, db):
    response = client.post("/webhooks/genesys", data=json.dumps(events.event()), headers={**webhook_auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert count(db, PlaybackEvent) == 0


def test_body_over_one_mib_is_413(client, webhook_auth, events, db):
    body = events.event(padding="x" * (1024 * 1024))
    response = post(client, body, webhook_auth)
    assert response.status_code == 413
    assert response.json["code"] == 413
    assert count(db, PlaybackEvent) == 0


def test_batch_over_500_is_413(client, webhook_auth, events, db):
    response = post(client, [events.event() for _ in range(501)], webhook_auth)
    assert response.status_code == 413 and "500" in response.json["message"]
    assert count(db, PlaybackEvent) == 0


def test_batch_of_500_is_accepted_in_one_go(client, webhook_auth, events, db):
    batch = [e for _ in range(166) for e in events.lifecycle()] + [events.event(), events.event()]
    response = post(client, batch, webhook_auth)
    assert response.json == {"accepted": 500, "duplicates": 0}
    assert count(db, Playback) == 168


def test_failure_mid_write_rolls_back_the_whole_batch(app, client, webhook_auth, events, db, monkeypatch):
    from billing_sync.ledger import bulk

    first, second = events.lifecycle(), events.lifecycle()
    post(client, [first[0], second[0]], webhook_auth)

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk, "update_playbacks", explode)  # after the events are written
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = post(client, [first[2], second[2], events.event()], webhook_auth)
    assert response.status_code == 500
    assert response.json["code"] == 500
    assert count(db, PlaybackEvent) == 2 and count(db, Playback) == 2
    assert playback(db, first[0]["playbackId"]).state == "started"

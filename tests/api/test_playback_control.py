"""Admin playback control against the sandbox org over real HTTP: start, stop, switch, errors, idempotency."""

from __future__ import annotations

from contextlib import closing

import pytest
from sqlalchemy import select

from billing_sync.models import AuditEntry, Playback
from billing_sync.sandbox.testing import running_sandbox

from ..control_fixtures import LONG_MEDIA, MEDIA_HOST, OTHER_MEDIA, SHORT_MEDIA
from ..genesys.sandbox_helpers import RecordingTransport, SandboxControl, sandbox_settings

PLAY = "/api/v1/conversations/{}/playbacks"


def audit_of(app, action):
    with app.extensions["billing_sync"].db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def playback_row(app, playback_id):
    with app.extensions["billing_sync"].db.read() as session:
        return session.scalars(select(Playback).where(Playback.playback_id == playback_id)).one()


def test_start_plays_records_who_asked_and_audits(control_app, control_client, admin_key, calls):
    headers, key_id = admin_key()
    conversation_id = calls.place_call()
    response = control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA, "loop": True,
                                                                     "max_duration_s": 120}, headers=headers)
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["conversation_id"], body["state"], body["requested_by"], body["loop"], body["max_duration_s"]) == (
        conversation_id, "requested", key_id, True, 120)
    assert response.headers["Location"] == f"/api/v1/playbacks/{body['playback_id']}"
    (played,) = calls.truth()
    assert (played["playbackId"], played["mediaUrl"], played["state"]) == (body["playback_id"], LONG_MEDIA, "started")
    row = playback_row(control_app, body["playback_id"])
    assert (row.state, row.requested_by, row.media_url) == ("requested", key_id, LONG_MEDIA)
    (entry,) = audit_of(control_app, "playback.started")
    assert (entry.actor, entry.subject) == (f"api_key:{key_id}", f"playback:{body['playback_id']}")
    assert entry.details == {"conversation_id": conversation_id, "media_url": LONG_MEDIA, "loop": True,
                             "max_duration_s": 120}
    read = control_client.get(f"/api/v1/playbacks/{body['playback_id']}", headers=headers).json
    assert (read["state"], read["requested_by"]) == ("requested", key_id)


def test_defaults_are_no_loop_and_thirty_seconds(control_client, admin_key, calls):
    headers, _ = admin_key()
    body = control_client.post(PLAY.format(calls.place_call()), json={"media_url": SHORT_MEDIA}, headers=headers).json
    assert (body["loop"], body["max_duration_s"]) == (False, 30)


def test_stop_stops_what_plays(control_app, control_client, admin_key, calls):
    headers, key_id = admin_key()
    conversation_id = calls.place_call()
    started = control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers).json
    response = control_client.post(PLAY.format(conversation_id) + "/stop", headers=headers)
    assert response.status_code == 200
    assert response.json == {"playback_id": started["playback_id"], "conversation_id": conversation_id,
                             "state": "stopped"}
    assert [p["state"] for p in calls.truth()] == ["stopped"]
    (entry,) = audit_of(control_app, "playback.stop_requested")
    assert (entry.actor, entry.subject) == (f"api_key:{key_id}", f"playback:{started['playback_id']}")


def test_stop_with_nothing_playing_is_404(control_client, admin_key, calls):
    headers, _ = admin_key()
    response = control_client.post(PLAY.format(calls.place_call()) + "/stop", headers=headers)
    assert response.status_code == 404
    assert "Nothing" in response.json["message"]


def test_switch_stops_then_plays_in_one_call(control_app, control_client, admin_key, calls):
    headers, key_id = admin_key()
    conversation_id = calls.place_call()
    first = control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers).json
    response = control_client.post(PLAY.format(conversation_id) + "/switch", json={"media_url": OTHER_MEDIA},
                                   headers=headers)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["stopped_playback_id"] == first["playback_id"]
    assert (body["started"]["media_url"], body["started"]["requested_by"]) == (OTHER_MEDIA, key_id)
    truth = {p["playbackId"]: p["state"] for p in calls.truth()}
    assert truth == {first["playback_id"]: "stopped", body["started"]["playback_id"]: "started"}
    (entry,) = audit_of(control_app, "playback.switched")
    assert entry.actor == f"api_key:{key_id}"
    assert entry.details["stopped_playback_id"] == first["playback_id"]


def test_switch_on_a_quiet_call_just_plays(control_client, admin_key, calls):
    headers, _ = admin_key()
    response = control_client.post(PLAY.format(calls.place_call()) + "/switch", json={"media_url": OTHER_MEDIA},
                                   headers=headers)
    assert response.status_code == 201
    assert response.json["stopped_playback_id"] is None
    assert len(calls.truth()) == 1


@pytest.mark.parametrize("role", ["viewer", "finance"])
def test_only_admins_control_playback(control_client, admin_key, calls, role):
    headers, _ = admin_key(role)
    conversation_id = calls.place_call()
    for suffix, body in (("", {"media_url": SHORT_MEDIA}), ("/stop", None), ("/switch", {"media_url": SHORT_MEDIA})):
        assert control_client.post(PLAY.format(conversation_id) + suffix, json=body, headers=headers).status_code == 403
    assert control_client.post(PLAY.format(conversation_id), json={"media_url": SHORT_MEDIA}).status_code == 401
    assert calls.truth() == []


REFUSALS = [
    ("length", f"https://{MEDIA_HOST}/" + "a" * 2040 + ".wav"),
    ("syntax", "not a url.wav"),
    ("scheme", f"http://{MEDIA_HOST}/a.wav"),
    ("scheme", f"ftp://{MEDIA_HOST}/a.wav"),
    ("credentials", f"https://user:secret@{MEDIA_HOST}/a.wav"),
    ("extension", f"https://{MEDIA_HOST}/a.exe"),
    ("extension", f"https://{MEDIA_HOST}/a?x=.wav"),
    ("ip_literal", "https://93.184.216.34/a.wav"),
    ("ip_literal", "https://127.0.0.1/a.wav"),
    ("ip_literal", "https://10.1.2.3/a.wav"),
    ("ip_literal", "https://169.254.169.254/a.wav"),
    ("ip_literal", "https://[fe80::1]/a.wav"),
    ("ip_literal", "https://2130706433/a.wav"),
    ("private_host", "https://localhost/a.wav"),
    ("private_host", "https://metadata.google.internal/a.wav"),
    ("host", "https://media.evil.example/a.wav"),
    ("host", f"https://x.{MEDIA_HOST}/a.wav"),
]


@pytest.mark.parametrize("action", ["", "/switch"])
@pytest.mark.parametrize(("rule", "url"), REFUSALS)
def test_every_media_rule_refuses_with_a_400_naming_it(control_client, admin_key, calls, action, rule, url):
    headers, _ = admin_key()
    response = control_client.post(PLAY.format("any-conversation") + action, json={"media_url": url},
                                   headers=headers)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"Invalid media_url: {rule}: ")
    assert response.json["errors"]["json"]["media_url"][0].startswith(f"{rule}: ")
    assert calls.truth() == []  # refused before anything went to Genesys Cloud


@pytest.mark.parametrize(("body", "field"), [
    ({}, "media_url"),
    ({"media_url": SHORT_MEDIA, "max_duration_s": 0}, "max_duration_s"),
    ({"media_url": SHORT_MEDIA, "max_duration_s": 3601}, "max_duration_s"),
    ({"media_url": SHORT_MEDIA, "max_duration_s": "30"}, "max_duration_s"),
    ({"media_url": SHORT_MEDIA, "loop": "sometimes"}, "loop"),
    ({"media_url": SHORT_MEDIA, "volume": 3}, "volume"),
])
def test_bad_bodies_are_400_naming_the_field(control_client, admin_key, body, field):
    headers, _ = admin_key()
    response = control_client.post(PLAY.format("c-1"), json=body, headers=headers)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"Invalid json: {field}: ")


def test_http_media_is_accepted_when_allowed(make_control_app, control_settings, calls):
    app = make_control_app(control_settings.replace(media_allow_http=True))
    from billing_sync.keys import create_key

    with app.extensions["billing_sync"].db.write() as session:
        _, key = create_key(session, role="admin", name="a", actor="test")
    response = app.test_client().post(PLAY.format(calls.place_call()), json={"media_url": f"http://{MEDIA_HOST}/a.wav"},
                                      headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201


def test_unknown_conversation_is_404(control_client, admin_key, calls):
    headers, _ = admin_key()
    response = control_client.post(PLAY.format("no-such-call"), json={"media_url": SHORT_MEDIA}, headers=headers)
    assert response.status_code == 404
    assert "no-such-call" in response.json["message"]


def test_a_call_that_ended_is_409(control_client, admin_key, calls):
    headers, _ = admin_key()
    conversation_id = calls.place_call()
    calls.disconnect(conversation_id)
    for action in ("", "/switch"):
        response = control_client.post(PLAY.format(conversation_id) + action, json={"media_url": SHORT_MEDIA},
                                       headers=headers)
        assert response.status_code == 409
        assert "no connected customer" in response.json["message"]
    assert calls.truth() == []


def test_a_missing_scope_is_502_naming_it(settings, make_control_app):
    with running_sandbox(seed=0, scopes=["conversation:view"]) as narrow, closing(SandboxControl(narrow)) as org:
        app = make_control_app(sandbox_settings(narrow, database_url=settings.database_url,
                                                media_allowed_hosts=(MEDIA_HOST,)))
        from billing_sync.keys import create_key

        with app.extensions["billing_sync"].db.write() as session:
            _, key = create_key(session, role="admin", name="a", actor="test")
        response = app.test_client().post(PLAY.format(org.place_call()), json={"media_url": SHORT_MEDIA},
                                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 502
    assert "conversation:play" in response.json["message"]


def test_rate_limiting_is_503_with_retry_after(make_control_app, admin_key, calls):
    app = make_control_app(max_tries=2, sleep=lambda seconds: None)
    headers, _ = admin_key()
    conversation_id = calls.place_call()
    calls.faults(rate_limit_every=1)
    response = app.test_client().post(PLAY.format(conversation_id), json={"media_url": SHORT_MEDIA}, headers=headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    calls.faults(rate_limit_every=None)
    assert calls.truth() == []


def test_rate_limited_start_frees_its_idempotency_key(make_control_app, admin_key, calls):
    app = make_control_app(max_tries=2, sleep=lambda seconds: None)
    headers = admin_key()[0] | {"Idempotency-Key": "retry-me"}
    client, conversation_id = app.test_client(), calls.place_call()
    calls.faults(rate_limit_every=1)
    assert client.post(PLAY.format(conversation_id), json={"media_url": SHORT_MEDIA}, headers=headers).status_code == 503
    calls.faults(rate_limit_every=None)
    retried = client.post(PLAY.format(conversation_id), json={"media_url": SHORT_MEDIA}, headers=headers)
    assert retried.status_code == 201  # nothing had happened, so the retry really plays
    assert "Idempotent-Replayed" not in retried.headers
    assert len(calls.truth()) == 1


def test_no_answer_is_504_and_a_retry_plays_nothing_new(make_control_app, admin_key, calls):
    transport = RecordingTransport()
    transport.lose_answer = lambda request: request.method == "POST" and request.url.path.endswith("/actions/play")
    app = make_control_app(transport=transport)
    headers = admin_key()[0] | {"Idempotency-Key": "lost-answer"}
    client, conversation_id = app.test_client(), calls.place_call()
    first = client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers)
    assert first.status_code == 504
    assert "did not answer" in first.json["message"]
    again = client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers)
    assert again.status_code == 504  # the outcome is unknown: the key keeps it, nothing is played twice
    assert len(calls.truth()) == 1
    assert transport.statuses("POST", "/actions/play") == [202]


def test_idempotent_start_returns_the_first_answer_and_plays_nothing_new(control_app, control_client, admin_key, calls):
    headers = admin_key()[0] | {"Idempotency-Key": "start-once"}
    conversation_id = calls.place_call()
    first = control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers)
    second = control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert [p["state"] for p in calls.truth()] == ["started"]
    assert len(audit_of(control_app, "playback.started")) == 1


def test_idempotent_switch_switches_once(control_client, admin_key, calls):
    headers, _ = admin_key()
    conversation_id = calls.place_call()
    control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA}, headers=headers)
    keyed = headers | {"Idempotency-Key": "switch-once"}
    first = control_client.post(PLAY.format(conversation_id) + "/switch", json={"media_url": OTHER_MEDIA}, headers=keyed)
    second = control_client.post(PLAY.format(conversation_id) + "/switch", json={"media_url": OTHER_MEDIA}, headers=keyed)
    assert second.json == first.json and second.headers["Idempotent-Replayed"] == "true"
    assert sorted(p["state"] for p in calls.truth()) == ["started", "stopped"]


def test_an_idempotency_key_reused_for_another_request_is_422(control_client, admin_key, calls):
    headers = admin_key()[0] | {"Idempotency-Key": "k-1"}
    conversation_id = calls.place_call()
    assert control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA},
                               headers=headers).status_code == 201
    other = control_client.post(PLAY.format(conversation_id), json={"media_url": OTHER_MEDIA}, headers=headers)
    assert other.status_code == 422
    assert "different request" in other.json["message"]
    assert len(calls.truth()) == 1


def test_idempotency_keys_belong_to_their_caller(control_client, admin_key, calls):
    conversation_id = calls.place_call()
    for _ in range(2):
        headers = admin_key()[0] | {"Idempotency-Key": "shared-name"}
        assert control_client.post(PLAY.format(conversation_id), json={"media_url": LONG_MEDIA},
                                   headers=headers).status_code == 201
    assert len(calls.truth()) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space"])
def test_a_malformed_idempotency_key_is_400(control_client, admin_key, calls, key):
    headers = admin_key()[0] | {"Idempotency-Key": key}
    response = control_client.post(PLAY.format(calls.place_call()), json={"media_url": SHORT_MEDIA}, headers=headers)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json["message"]
    assert calls.truth() == []


def test_without_genesys_credentials_control_is_503_naming_the_setting(settings, make_control_app):
    app = make_control_app(settings.replace(media_allowed_hosts=(MEDIA_HOST,)))
    from billing_sync.keys import create_key

    with app.extensions["billing_sync"].db.write() as session:
        _, key = create_key(session, role="admin", name="a", actor="test")
    response = app.test_client().post(PLAY.format("c-1"), json={"media_url": SHORT_MEDIA},
                                      headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert "GENESYS_CLIENT_ID" in response.json["message"]

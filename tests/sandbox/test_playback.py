"""Playback control and lifecycles, checked against the ground truth and webhook events."""

from __future__ import annotations

from datetime import datetime

from billing_sync.sandbox import media_length_ms

from .conftest import new_call, play, register_webhook, truth_of, wait_for


def events_of(receiver, playback_id):
    return sorted((r["body"]["eventBody"] for r in receiver.accepted()
                   if r["body"]["eventBody"]["playbackId"] == playback_id),
                  key=lambda e: e["sequence"])


def test_media_length_is_deterministic_and_overridable():
    url = "https://media.example.com/welcome.wav"
    assert media_length_ms(url) == media_length_ms(url)
    assert 5_000 <= media_length_ms(url) <= 60_000
    assert media_length_ms(url + "?duration_ms=1234") == 1234


def test_play_runs_its_lifecycle_to_completed(api, control, receiver):
    register_webhook(api, receiver.url)
    call = new_call(control)
    response = play(api, call, "https://m.example.com/a.wav?duration_ms=12000", maxDuration=30)
    assert response.status_code == 202
    started = response.json()
    assert started["state"] == "started" and started["conversationId"] == call
    assert started["loop"] is False and started["maxDuration"] == 30
    playback_id = started["id"]
    wait_for(lambda: truth_of(control, playback_id)["state"] == "completed", what="completed")
    assert truth_of(control, playback_id)["duration"] == 12000
    events = wait_for(lambda: (e := events_of(receiver, playback_id)) and
                      e[-1]["state"] == "completed" and e, what="webhook events")
    assert [e["state"] for e in events] == ["started", "progress", "progress", "completed"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4]
    assert [e["duration"] for e in events] == [0, 5000, 10000, 12000]
    assert len({e["id"] for e in events}) == 4
    for event in events:
        assert event["eventType"] == "conversation:voice:playback"
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 24
        datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def test_max_duration_ends_a_looping_playback(api, control):
    call = new_call(control)
    playback_id = play(api, call, "https://m.example.com/a.mp3?duration_ms=4000",
                       loop=True, maxDuration=9).json()["id"]
    wait_for(lambda: truth_of(control, playback_id)["state"] == "completed", what="completed")
    assert truth_of(control, playback_id)["duration"] == 9000


def test_a_new_play_stops_the_old_one(api, control):
    call = new_call(control)
    first = play(api, call, "https://m.example.com/long.wav", loop=True).json()["id"]
    second = play(api, call, "https://m.example.com/b.ogg?duration_ms=1000").json()["id"]
    assert truth_of(control, first)["state"] == "stopped"
    wait_for(lambda: truth_of(control, second)["state"] == "completed", what="second completed")


def test_stop_ends_the_playback_and_404s_when_nothing_plays(api, control):
    call = new_call(control)
    stop_url = f"/api/v2/conversations/voice/{call}/actions/play/stop"
    assert api.post(stop_url).status_code == 404
    playback_id = play(api, call, "https://m.example.com/x.opus", loop=True).json()["id"]
    response = api.post(stop_url)
    assert response.status_code == 202
    assert response.json() == {"id": playback_id, "state": "stopped"}
    assert truth_of(control, playback_id)["state"] == "stopped"
    assert api.post(stop_url).status_code == 404


def test_disconnect_stops_playback_and_the_call_is_no_longer_playable(api, control):
    call = new_call(control)
    playback_id = play(api, call, "https://m.example.com/x.wav", loop=True).json()["id"]
    assert control.post(f"/conversations/{call}/disconnect").status_code == 200
    assert truth_of(control, playback_id)["state"] == "stopped"
    response = play(api, call, "https://m.example.com/x.wav")
    assert response.status_code == 409 and response.json()["code"] == "conversation.not.connected"


def test_failing_media_ends_failed(api, control):
    call = new_call(control)
    fetch = play(api, call, "https://m.example.com/x.wav?fail=1").json()["id"]
    wait_for(lambda: truth_of(control, fetch)["state"] == "failed", what="fetch failure")
    assert truth_of(control, fetch)["duration"] == 0
    decode = play(api, call, "https://m.example.com/x.wav?duration_ms=9000&fail_after_ms=7000")
    decode_id = decode.json()["id"]
    wait_for(lambda: truth_of(control, decode_id)["state"] == "failed", what="decode failure")
    assert truth_of(control, decode_id)["duration"] == 7000


def test_invalid_plays_are_refused(api, control):
    call = new_call(control)
    cases = [({"play": {"url": "ftp://m.example.com/a.wav"}}, 400, "play.url"),
             ({"play": {"url": "https://m.example.com/a.txt"}}, 400, "play.url"),
             ({"play": {"url": "https://m.example.com/a.wav", "maxDuration": 0}}, 400,
              "play.maxDuration"),
             ({"nothing": 1}, 400, "play")]
    for body, status, field in cases:
        response = api.post(f"/api/v2/conversations/voice/{call}/actions/play", json=body)
        assert response.status_code == status
        assert response.json()["details"][0]["fieldName"] == field
    response = play(api, "no-such-call", "https://m.example.com/a.wav")
    assert response.status_code == 404 and response.json()["code"] == "not.found"

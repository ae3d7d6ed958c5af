"""Calls (§4) and playback control (§5): typed answers, typed refusals, bodies as the contract says."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from billing_sync.genesys import errors

from .conftest import genesys_error, json_of


def participant(purpose="customer", state="connected", **extra):
    return {"id": f"p-{purpose}", "purpose": purpose, "state": state, "direction": "inbound",
            "ani": "tel:+15550100", "dnis": "tel:+15550199", "held": False, "muted": False,
            "recording": False, "connectedTime": "2026-11-24T02:27:51.123Z", "endTime": None,
            "someFutureField": {"x": 1}, **extra}


def call_body(*participants, conversation_id="c-1"):
    return {"id": conversation_id, "participants": list(participants), "recordingState": "none",
            "selfUri": f"/api/v2/conversations/calls/{conversation_id}"}


def test_get_call_reads_participants_as_typed_values(org, genesys):
    org.route("GET", r"/api/v2/conversations/calls/c-1", httpx.Response(200, json=call_body(participant())))
    call = genesys.get_call("c-1")
    assert call.id == "c-1" and call.recording_state == "none"
    (customer,) = call.participants
    assert (customer.purpose, customer.state, customer.ani) == ("customer", "connected", "tel:+15550100")
    assert customer.connected_time == datetime(2026, 11, 24, 2, 27, 51, 123000, tzinfo=UTC)
    assert customer.end_time is None


@pytest.mark.parametrize(("participants", "playable"), [
    ([participant("customer", "connected")], True),
    ([participant("external", "connected")], True),
    ([participant("agent", "connected"), participant("customer", "disconnected")], False),
    ([participant("agent", "connected"), participant("acd", "connected")], False),
    ([participant("customer", "alerting")], False),
    ([participant("customer", "terminated"), participant("external", "connected")], True),
    ([], False),
])
def test_a_call_is_playable_when_a_customer_or_external_party_is_connected(org, genesys, participants, playable):
    org.route("GET", r"/api/v2/conversations/calls/c-1", httpx.Response(200, json=call_body(*participants)))
    assert genesys.get_call("c-1").playable is playable


def test_the_generic_conversation_view_carries_its_state(org, genesys):
    body = {**call_body(participant()), "state": "connected"}
    org.route("GET", r"/api/v2/conversations/c-1", httpx.Response(200, json=body))
    conversation = genesys.get_conversation("c-1")
    assert conversation.state == "connected" and conversation.playable


def test_an_unknown_conversation_is_not_found(org, genesys):
    org.route("GET", r"/api/v2/conversations/calls/.*", genesys_error(404, "not.found", "Conversation not found"))
    with pytest.raises(errors.NotFound) as raised:
        genesys.get_call("nope")
    assert raised.value.code == "not.found" and raised.value.path == "/api/v2/conversations/calls/nope"


def test_an_id_cannot_reach_another_endpoint(org, genesys):
    org.route("GET", r"/api/v2/conversations/calls/.*", httpx.Response(200, json=call_body()))
    genesys.get_call("../../webhooks")
    assert org.api_requests()[0].url.raw_path == b"/api/v2/conversations/calls/..%2F..%2Fwebhooks"
    with pytest.raises(ValueError):
        genesys.get_call("")


@pytest.mark.parametrize("body", [{"participants": []}, {"id": "c-1"},
                                  {"id": "c-1", "participants": [{"id": "x", "purpose": "customer"}]},
                                  {"id": "c-1", "participants": [participant(connectedTime="2026-11-24T02:27:51")]}])
def test_an_answer_without_the_fields_used_is_invalid_response(org, genesys, body):
    org.route("GET", r"/api/v2/conversations/calls/c-1", httpx.Response(200, json=body))
    with pytest.raises(errors.InvalidResponse) as raised:
        genesys.get_call("c-1")
    assert raised.value.path == "/api/v2/conversations/calls/c-1"


def test_start_playback_posts_the_play_body_to_the_playback_base(org, make_client):
    genesys = make_client(playback_base="https://playback.example.test")
    answer = {"id": "pb-1", "conversationId": "c-1", "state": "started", "mediaUrl": "https://m.example.com/a.wav",
              "loop": True, "maxDuration": 45, "selfUri": "/x"}
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play", httpx.Response(202, json=answer))
    playback = genesys.start_playback("c-1", "https://m.example.com/a.wav", loop=True, max_duration_s=45)
    assert (playback.id, playback.state, playback.loop, playback.max_duration_s) == ("pb-1", "started", True, 45)
    (request,) = org.api_requests()
    assert request.url.host == "playback.example.test"
    assert json_of(request) == {"play": {"url": "https://m.example.com/a.wav", "loop": True, "maxDuration": 45}}


def test_playback_defaults_to_the_api_base_thirty_seconds_and_no_loop(org, genesys):
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play",
              httpx.Response(202, json={"id": "pb-1", "conversationId": "c-1", "state": "started"}))
    genesys.start_playback("c-1", "https://m.example.com/a.wav")
    (request,) = org.api_requests()
    assert request.url.host == "api.example.test"
    assert json_of(request)["play"] == {"url": "https://m.example.com/a.wav", "loop": False, "maxDuration": 30}


@pytest.mark.parametrize(("url", "max_duration_s"), [("ftp://m.example.com/a.wav", 30), ("not a url", 30),
                                                      ("https://m.example.com/a.wav", 0)])
def test_a_bad_play_request_is_refused_before_it_is_sent(org, genesys, url, max_duration_s):
    with pytest.raises(ValueError, match="invalid request body"):
        genesys.start_playback("c-1", url, max_duration_s=max_duration_s)
    assert org.requests == []


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "bad.request", errors.BadRequest),
    (403, "missing.permissions", errors.Forbidden),
    (404, "not.found", errors.NotFound),
    (409, "conversation.not.connected", errors.Conflict),
])
def test_play_refusals_are_typed(org, genesys, status, code, cls):
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play", genesys_error(status, code))
    with pytest.raises(cls) as raised:
        genesys.start_playback("c-1", "https://m.example.com/a.wav")
    assert (raised.value.status, raised.value.code) == (status, code)


def test_stop_playback(org, genesys):
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play/stop",
              httpx.Response(202, json={"id": "pb-1", "state": "stopped"}))
    stopped = genesys.stop_playback("c-1")
    assert (stopped.id, stopped.state) == ("pb-1", "stopped")
    assert org.api_requests()[0].content == b""


def test_stopping_when_nothing_plays_is_not_found(org, genesys):
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play/stop", genesys_error(404, "not.found"))
    with pytest.raises(errors.NotFound):
        genesys.stop_playback("c-1")

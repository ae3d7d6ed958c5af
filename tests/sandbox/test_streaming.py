"""Notification channels, subscriptions and the WebSocket stream."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .conftest import new_call, play


def create_channel(api) -> dict:
    response = api.post("/api/v2/notifications/channels")
    assert response.status_code == 200, response.text
    return response.json()


def next_message(socket, topic: str | None = None, timeout: float = 3.0) -> dict:
    """The next message, skipping heartbeats unless asked for `channel.metadata`."""
    while True:
        message = json.loads(socket.recv(timeout=timeout))
        if topic is None and message["topicName"] == "channel.metadata":
            continue
        if topic is None or message["topicName"] == topic:
            return message


def test_channel_shape_and_head(api, sandbox):
    channel = create_channel(api)
    assert channel["id"].startswith("streaming-0-")
    assert channel["connectUri"] == f"ws://127.0.0.1:{sandbox.stream_port}/channels/{channel['id']}"
    expires = datetime.fromisoformat(channel["expires"].replace("Z", "+00:00"))
    now = sandbox.platform.clock.now()
    assert timedelta(hours=23, minutes=59) < expires - now <= timedelta(hours=24)
    assert api.head(f"/api/v2/notifications/channels/{channel['id']}").status_code == 200
    assert api.head("/api/v2/notifications/channels/streaming-0-nope").status_code == 404


def test_subscriptions_put_post_get_delete_and_limit(api):
    channel = create_channel(api)
    url = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
    put = api.put(url, json=[{"id": "v2.conversations.a.playback"}, {"id": "v2.users.x.presence"}])
    assert put.json()["entities"] == [{"id": "v2.conversations.a.playback", "state": "Permitted"},
                                      {"id": "v2.users.x.presence", "state": "Rejected"}]
    api.post(url, json=[{"id": "v2.conversations.b.dtmf"}])
    topics = [e["id"] for e in api.get(url).json()["entities"]]
    assert topics == ["v2.conversations.a.playback", "v2.conversations.b.dtmf"]
    api.put(url, json=[{"id": "v2.conversations.c.transcription"}])
    assert [e["id"] for e in api.get(url).json()["entities"]] == ["v2.conversations.c.transcription"]
    too_many = [{"id": f"v2.conversations.{n}.playback"} for n in range(1000)]
    response = api.post(url, json=too_many)
    assert response.status_code == 400 and response.json()["code"] == "bad.request"
    assert api.put(url, json=too_many).status_code == 200
    assert api.delete(url).status_code == 204
    assert api.get(url).json()["entities"] == []


def test_events_reach_subscribed_sockets(api, control):
    call = new_call(control)
    channel = create_channel(api)
    api.put(f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
            json=[{"id": f"v2.conversations.{call}.{kind}"} for kind in
                  ("playback", "dtmf", "transcription")])
    with connect(channel["connectUri"]) as socket:
        ready(socket)
        playback_id = play(api, call, "https://m.example.com/a.wav?duration_ms=2000").json()["id"]
        started = next_message(socket)
        assert started["topicName"] == f"v2.conversations.{call}.playback"
        assert started["eventBody"]["playbackId"] == playback_id
        assert started["eventBody"]["state"] == "started" and started["version"] == "2"
        assert next_message(socket)["eventBody"]["state"] == "completed"
        control.post(f"/conversations/{call}/dtmf", json={"digit": "5"})
        dtmf = next_message(socket)["eventBody"]
        assert dtmf["digit"] == "5" and dtmf["conversationId"] == call and dtmf["timestamp"]
        control.post(f"/conversations/{call}/speech", json={"text": "cancel my order"})
        body = next_message(socket)["eventBody"]
        assert body["conversationId"] == call and body["organizationId"] and body["eventTime"]
        transcript = body["transcripts"][0]
        assert transcript["isFinal"] is True and transcript["channel"] == "EXTERNAL"
        assert transcript["alternatives"][0]["transcript"] == "cancel my order"


def ready(socket) -> None:
    """Ping and wait for the pong: the server has registered the socket."""
    socket.send(json.dumps({"message": "ping"}))
    while next_message(socket, "channel.metadata")["eventBody"]["message"] != "pong":
        pass


def test_heartbeat_and_ping_pong(api):
    channel = create_channel(api)
    with connect(channel["connectUri"]) as socket:
        heartbeat = next_message(socket, "channel.metadata")
        assert heartbeat["eventBody"] == {"message": "WebSocket Heartbeat"}
        socket.send(json.dumps({"message": "ping"}))
        while (message := next_message(socket, "channel.metadata"))["eventBody"]["message"] != "pong":
            pass
        assert message == {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}


def test_a_second_connection_closes_the_first(api):
    channel = create_channel(api)
    with connect(channel["connectUri"]) as first:
        ready(first)
        with connect(channel["connectUri"]) as second:
            with pytest.raises(ConnectionClosed):
                while True:
                    first.recv(timeout=3)
            second.send(json.dumps({"message": "ping"}))
            assert next_message(second, "channel.metadata")["topicName"] == "channel.metadata"


def test_socket_closing_notice_then_close(api, control):
    channel = create_channel(api)
    with connect(channel["connectUri"]) as socket:
        ready(socket)
        assert control.put("/faults", json={"socket_closing_now": True}).status_code == 200
        notice = next_message(socket, "v2.system.socket_closing")
        assert "eventBody" in notice
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=3)
    assert control.get("/faults").json()["socket_closing_now"] is False


def test_stream_drop_fault_cuts_the_socket(api, control):
    control.put("/faults", json={"stream_drop_every_s": 20})
    channel = create_channel(api)
    with connect(channel["connectUri"]) as socket:
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=3)


def test_nothing_is_kept_while_disconnected(api, control):
    call = new_call(control)
    channel = create_channel(api)
    api.put(f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
            json=[{"id": f"v2.conversations.{call}.dtmf"}])
    control.post(f"/conversations/{call}/dtmf", json={"digit": "1"})
    with connect(channel["connectUri"]) as socket:
        ready(socket)
        control.post(f"/conversations/{call}/dtmf", json={"digit": "2"})
        assert next_message(socket)["eventBody"]["digit"] == "2"


def test_unknown_channel_is_refused(sandbox):
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{sandbox.stream_port}/channels/streaming-0-nope")


def test_the_21st_channel_drops_the_oldest_unconnected(api):
    channels = [create_channel(api) for _ in range(20)]
    with connect(channels[0]["connectUri"]) as socket:
        ready(socket)
        create_channel(api)
        head = lambda c: api.head(f"/api/v2/notifications/channels/{c['id']}").status_code
        assert head(channels[0]) == 200
        assert head(channels[1]) == 404
        assert all(head(c) == 200 for c in channels[2:])

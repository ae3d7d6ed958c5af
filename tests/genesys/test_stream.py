"""The notification stream against scripted channels: typed events, reconnects, no duplicates.

Each test runs one event loop under a hard timeout; heartbeat intervals are tens of
milliseconds so the watchdog trips quickly, and nothing asserts how fast anything was.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from billing_sync.genesys import errors
from billing_sync.genesys.events import (
    Dtmf, StreamConnected, StreamDisconnected, Transcription, dtmf_topic, parse_message, playback_topic,
    transcription_topic,
)
from billing_sync.genesys.stream import NotificationStream
from billing_sync.ledger.events import PlaybackEvent, ReceivedEvent

from .conftest import genesys_error
from .fake_streaming import CHANNELS, FakeNotifications

TEST_TIMEOUT_S = 8
_ids = itertools.count(1)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TEST_TIMEOUT_S))


def playback(conversation_id: str, sequence: int, state: str = "progress") -> dict:
    return {"id": f"evt-{next(_ids)}", "eventType": "conversation:voice:playback",
            "conversationId": conversation_id, "playbackId": f"pb-{conversation_id}", "state": state,
            "duration": 1000 * sequence, "sequence": sequence, "mediaUrl": "https://m.example.com/a.wav",
            "timestamp": "2026-11-24T02:28:03.123Z"}


async def next_event(stream, kind=object, *, skip=(StreamConnected, StreamDisconnected, type(None))):
    """The next event that is a `kind`, skipping connection notices unless they are what is wanted."""
    while True:
        event = await stream.__anext__()
        if isinstance(event, kind) and not (kind is object and isinstance(event, skip)):
            return event


@pytest.fixture
def streaming(org):
    return FakeNotifications(org)


@pytest.fixture
def open_stream(genesys, streaming):
    def make(topics, **options):
        options = {"connect": streaming.connect, "heartbeat_interval_s": 5.0, "rng": random.Random(3), **options}
        return NotificationStream(genesys, topics, **options)
    return make


def test_events_arrive_typed_and_heartbeats_do_not(open_stream, streaming):
    topics = [playback_topic("c-1"), dtmf_topic("c-1"), transcription_topic("c-1")]

    async def scenario():
        async with open_stream(topics) as stream:
            connected = await next_event(stream, StreamConnected)
            socket = streaming.sockets[connected.channel_id]
            socket.push({"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}})
            streaming.publish(playback_topic("c-1"), playback("c-1", 1, "started"))
            streaming.publish(dtmf_topic("c-1"), {"conversationId": "c-1", "digit": "5",
                                                  "timestamp": "2026-11-24T02:28:04.000Z"})
            streaming.publish(transcription_topic("c-1"), {
                "eventTime": "2026-11-24T02:28:05.000Z", "organizationId": "org", "conversationId": "c-1",
                "communicationId": "comm-1", "transcripts": [{"utteranceId": "u-1", "isFinal": True,
                "channel": "EXTERNAL", "alternatives": [{"confidence": 0.9, "transcript": "hello",
                                                          "offsetMs": 10, "durationMs": 500}]}]})
            return connected, [await next_event(stream) for _ in range(3)]

    connected, (received, dtmf, transcription) = run(scenario())
    assert connected.topics == 3
    assert isinstance(received, ReceivedEvent) and isinstance(received.event, PlaybackEvent)
    assert (received.event.conversation_id, received.event.state) == ("c-1", "started")
    assert received.source_event_id.startswith("evt-")
    assert isinstance(dtmf, Dtmf) and dtmf.digit == "5"
    assert isinstance(transcription, Transcription) and transcription.utterances[0].transcript == "hello"


def test_a_bad_event_is_skipped_and_the_stream_goes_on(open_stream, streaming):
    async def scenario():
        async with open_stream([playback_topic("c-1")]) as stream:
            await next_event(stream, StreamConnected)
            streaming.publish(playback_topic("c-1"), {"conversationId": "c-1", "state": "nonsense"})
            streaming.publish(playback_topic("c-1"), playback("c-1", 2))
            return await next_event(stream)

    assert run(scenario()).event.sequence == 2


def test_it_never_stops_at_a_completed_event(open_stream, streaming):
    async def scenario():
        async with open_stream([playback_topic("c-1"), playback_topic("c-2")]) as stream:
            await next_event(stream, StreamConnected)
            streaming.publish(playback_topic("c-1"), playback("c-1", 3, "completed"))
            streaming.publish(playback_topic("c-2"), playback("c-2", 1, "started"))
            streaming.publish(playback_topic("c-2"), playback("c-2", 2, "completed"))
            return [(await next_event(stream)).event.state for _ in range(3)]

    assert run(scenario()) == ["completed", "started", "completed"]


def test_topics_beyond_a_channels_limit_open_more_channels(open_stream, streaming):
    topics = [playback_topic(f"c-{n}") for n in range(7)]

    async def scenario():
        async with open_stream(topics, max_topics_per_channel=3) as stream:
            for _ in range(3):
                await next_event(stream, StreamConnected)
            assert all(streaming.publish(t, playback(t.split(".")[2], 1)) == 1 for t in topics)
            return {(await next_event(stream)).event.conversation_id for _ in topics}

    assert run(scenario()) == {f"c-{n}" for n in range(7)}
    assert sorted(len(t) for t in streaming.channels.values()) == [1, 3, 3]
    assert all(streaming.subscriptions_of(t) == 1 for t in topics)


def test_set_topics_adds_and_removes_without_duplicates(open_stream, streaming, org):
    async def scenario():
        async with open_stream([playback_topic("c-1"), playback_topic("c-2")], max_topics_per_channel=2) as stream:
            await next_event(stream, StreamConnected)
            await stream.set_topics([playback_topic("c-2"), playback_topic("c-3"), playback_topic("c-4")])
            await next_event(stream, StreamConnected)  # c-4 did not fit: a second channel
            await stream.set_topics([playback_topic("c-2"), playback_topic("c-3"), playback_topic("c-4")])
            streaming.publish(playback_topic("c-1"), playback("c-1", 1))
            for n in (2, 3, 4):
                streaming.publish(playback_topic(f"c-{n}"), playback(f"c-{n}", 1))
            return sorted([(await next_event(stream)).event.conversation_id for _ in range(3)]), stream.topics

    delivered, topics = run(scenario())
    assert delivered == ["c-2", "c-3", "c-4"]
    assert topics == {playback_topic(f"c-{n}") for n in (2, 3, 4)}
    assert streaming.subscriptions_of(playback_topic("c-1")) == 0
    assert all(streaming.subscriptions_of(playback_topic(f"c-{n}")) == 1 for n in (2, 3, 4))
    assert org.api_requests("POST") and all(r.url.path == CHANNELS for r in org.api_requests("POST"))


def test_a_dropped_socket_reconnects_with_a_fresh_token_and_one_subscription(open_stream, streaming, org):
    topic = playback_topic("c-1")

    async def scenario():
        async with open_stream([topic]) as stream:
            first = await next_event(stream, StreamConnected)
            tokens_before = len(org.tokens_issued)
            streaming.sockets[first.channel_id].drop()
            dropped = await next_event(stream, StreamDisconnected)
            second = await next_event(stream, StreamConnected)
            streaming.publish(topic, playback("c-1", 7))
            return first, dropped, second, await next_event(stream), tokens_before

    first, dropped, second, event, tokens_before = run(scenario())
    assert "ConnectionClosed" in dropped.reason
    assert second.channel_id == first.channel_id  # the channel lived on: reused, resubscribed
    assert len(org.tokens_issued) == tokens_before + 1
    assert event.event.sequence == 7
    assert streaming.subscriptions_of(topic) == 1


def test_socket_closing_moves_to_a_new_channel(open_stream, streaming):
    topic = playback_topic("c-1")

    async def scenario():
        async with open_stream([topic]) as stream:
            first = await next_event(stream, StreamConnected)
            streaming.close_channel(first.channel_id)
            closing = await next_event(stream, StreamDisconnected)
            second = await next_event(stream, StreamConnected)
            streaming.publish(topic, playback("c-1", 2))
            return first, closing, second, await next_event(stream)

    first, closing, second, event = run(scenario())
    assert closing.reason == "socket closing"
    assert second.channel_id != first.channel_id
    assert event.event.sequence == 2
    assert streaming.subscriptions_of(topic) == 1


def test_silence_for_two_heartbeats_reconnects_and_pings_keep_a_quiet_socket_alive(open_stream, streaming):
    streaming.answer_pings = False

    async def scenario():
        async with open_stream([playback_topic("c-1")], heartbeat_interval_s=0.05) as stream:
            first = await next_event(stream, StreamConnected)
            socket = streaming.sockets[first.channel_id]
            silent = await next_event(stream, StreamDisconnected)
            await next_event(stream, StreamConnected)
            return silent, socket

    silent, socket = run(scenario())
    assert silent.reason == "no heartbeat"
    assert '{"message": "ping"}' in socket.sent


def test_a_socket_that_answers_pings_is_not_reconnected(open_stream, streaming):
    async def scenario():
        async with open_stream([playback_topic("c-1")], heartbeat_interval_s=0.05) as stream:
            await next_event(stream, StreamConnected)
            await asyncio.sleep(0.5)  # ten heartbeat intervals, each answered by a pong
            streaming.publish(playback_topic("c-1"), playback("c-1", 1))
            return await stream.__anext__()

    assert isinstance(run(scenario()), ReceivedEvent)
    assert len(streaming.connects) == 1


def test_the_channel_is_renewed_before_it_expires(org, genesys):
    streaming = FakeNotifications(org, lifetime=timedelta(seconds=0.6))

    async def scenario():
        stream = NotificationStream(genesys, [playback_topic("c-1")], connect=streaming.connect,
                                    heartbeat_interval_s=5.0, renew_before_s=600)
        async with stream:
            first = await next_event(stream, StreamConnected)
            renewal = await next_event(stream, StreamDisconnected)
            second = await next_event(stream, StreamConnected)
            return first, renewal, second

    first, renewal, second = run(scenario())
    assert renewal.reason == "channel renewal"
    assert first.channel_id != second.channel_id
    assert streaming.channels[first.channel_id] == []  # the old channel let go of its topics
    assert streaming.subscriptions_of(playback_topic("c-1")) == 1


def test_failed_reconnects_back_off_more_each_time(open_stream, streaming, monkeypatch):
    delays: list[int] = []

    async def scenario():
        stream = open_stream([playback_topic("c-1")])
        monkeypatch.setattr(stream, "reconnect_delay", lambda failures: delays.append(failures) or 0.0)
        streaming.refuse_connects = 3
        async with stream:
            return await next_event(stream, StreamConnected)

    run(scenario())
    assert delays == [1, 2, 3]
    assert len(streaming.connects) == 4


def test_a_flapping_socket_meets_a_growing_backoff(open_stream, streaming, monkeypatch):
    delays: list[int] = []

    async def scenario():
        stream = open_stream([playback_topic("c-1")])
        monkeypatch.setattr(stream, "reconnect_delay", lambda failures: delays.append(failures) or 0.0)
        streaming.drop_on_connect = 3
        async with stream:
            for _ in range(3):
                await next_event(stream, StreamDisconnected)
            await next_event(stream, StreamConnected)
            streaming.publish(playback_topic("c-1"), playback("c-1", 1))
            return await next_event(stream)

    assert isinstance(run(scenario()), ReceivedEvent)
    assert delays == [1, 2, 3]


def test_an_unexpected_error_is_raised_from_the_iterator_not_swallowed(genesys, streaming):
    def broken_connect(uri):
        raise RuntimeError("a bug in the connect path")

    async def scenario():
        stream = NotificationStream(genesys, [playback_topic("c-1")], connect=broken_connect)
        with pytest.raises(RuntimeError, match="a bug"):
            async for _ in stream:
                pass

    run(scenario())


def test_reconnect_delay_is_bounded_exponential_with_jitter(genesys):
    stream = NotificationStream(genesys, reconnect_backoff_base_s=0.5, reconnect_backoff_cap_s=8, rng=random.Random(1))
    for failures, ceiling in [(1, 0.5), (2, 1), (3, 2), (5, 8), (40, 8)]:
        assert ceiling / 2 <= stream.reconnect_delay(failures) <= ceiling


def test_a_missing_scope_ends_the_stream_with_forbidden(open_stream, org):
    org.route("POST", CHANNELS, genesys_error(403, "missing.scope", "Missing scope: event:subscribe"))

    async def scenario():
        stream = open_stream([playback_topic("c-1")])
        with pytest.raises(errors.Forbidden) as raised:
            await stream.__anext__()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        return raised.value

    assert run(scenario()).missing == ("event:subscribe",)


def test_aclose_ends_a_waiting_iteration_and_stops_the_channel_tasks(open_stream, streaming):
    async def scenario():
        stream = open_stream([playback_topic("c-1")])
        await next_event(stream, StreamConnected)
        waiting = asyncio.create_task(stream.__anext__())
        await asyncio.sleep(0.05)
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await waiting
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "genesys-notification-channel"]
        return tasks

    assert run(scenario()) == []
    assert streaming.sockets == {}


def test_aclose_as_a_message_arrives_still_stops_the_channel_task(open_stream, streaming):
    """The cancel and the message land in the same loop turn: the cancel must not be lost
    (Python 3.11's wait_for returned the message instead, and the task read on until its
    heartbeat watchdog fired, holding up aclose and the worker's shutdown)."""

    async def scenario():
        stream = open_stream([playback_topic("c-1")], heartbeat_interval_s=3600.0)
        await next_event(stream, StreamConnected)
        streaming.publish(playback_topic("c-1"), playback("c-1", 1))
        await stream.aclose()
        return [t for t in asyncio.all_tasks() if t.get_name() == "genesys-notification-channel"]

    assert run(scenario()) == []


@pytest.mark.parametrize("event_time", ["2026-11-24T02:28:05.000Z", 1795487285000])
def test_transcription_time_may_be_iso_or_epoch_milliseconds(event_time):
    message = parse_message(json.dumps({"topicName": transcription_topic("c-1"), "eventBody": {
        "eventTime": event_time, "conversationId": "c-1", "transcripts": []}}))
    assert message.event.occurred_at == datetime(2026, 11, 24, 2, 28, 5, tzinfo=UTC)


@pytest.mark.parametrize("event_time", ["2026-11-24T02:28:05", "soon", True])
def test_a_transcription_without_a_usable_time_is_skipped(event_time):
    message = parse_message(json.dumps({"topicName": transcription_topic("c-1"), "eventBody": {
        "eventTime": event_time, "conversationId": "c-1", "transcripts": []}}))
    assert message.topic == transcription_topic("c-1") and message.event is None

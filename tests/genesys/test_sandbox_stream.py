"""The notification stream against the sandbox over real HTTP and WebSocket.

It must survive a dropped socket, a `v2.system.socket_closing` and an expired token,
keep exactly one subscription per topic, and deliver every event sent while connected.
"""

from __future__ import annotations

import asyncio
from contextlib import closing

import pytest

from billing_sync.genesys.events import (
    Dtmf, StreamConnected, StreamDisconnected, Transcription, dtmf_topic, playback_topic, transcription_topic,
)
from billing_sync.genesys.stream import NotificationStream
from billing_sync.ledger.events import ReceivedEvent
from billing_sync.sandbox.testing import running_sandbox

from .sandbox_helpers import RecordingTransport, SandboxControl, client_for

TEST_TIMEOUT_S = 10
TIME_SCALE = 50.0          # sandbox heartbeats every 30 / 50 = 0.6 s
HEARTBEAT_S = 30 / TIME_SCALE
MEDIA = "https://media.example.com/welcome.wav?duration_ms=20000"  # 0.4 s: started, 3 × progress, completed


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TEST_TIMEOUT_S))


@pytest.fixture
def sandbox():
    with running_sandbox(seed=0, time_scale=TIME_SCALE) as sandbox:
        yield sandbox


@pytest.fixture
def control(sandbox):
    with closing(SandboxControl(sandbox)) as control:
        yield control


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def genesys(sandbox, transport):
    with client_for(sandbox, transport=transport) as client:
        yield client


async def next_of(stream, kind):
    """The next event of type `kind`, skipping everything else."""
    async for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError("the stream ended")


async def play_and_follow(stream, genesys, conversation_id) -> list[ReceivedEvent]:
    """Start a playback and return its events up to and including the terminal one."""
    playback = await asyncio.to_thread(genesys.start_playback, conversation_id, MEDIA)
    events = []
    while not events or not events[-1].event.terminal:
        event = await next_of(stream, ReceivedEvent)
        if event.event.playback_id == playback.id:
            events.append(event)
    return events


def assert_every_event_of_one_playback(events: list[ReceivedEvent], truth: list[dict]) -> None:
    sequences = [e.event.sequence for e in events]
    assert sequences == list(range(1, len(sequences) + 1)), "a gap or a duplicate in the sequence"
    assert [e.event.state for e in events][0] == "started" and events[-1].event.state == "completed"
    (played,) = [p for p in truth if p["playbackId"] == events[0].event.playback_id]
    assert events[-1].event.duration_ms == played["duration"] == 20_000


def subscribers(sandbox, topic: str) -> list[str]:
    return sandbox.platform.channels.subscribers(topic)


def test_every_event_sent_while_connected_arrives_typed(sandbox, control, genesys):
    conversation_id = control.place_call()
    topics = [playback_topic(conversation_id), dtmf_topic(conversation_id), transcription_topic(conversation_id)]

    async def scenario():
        async with NotificationStream(genesys, topics, heartbeat_interval_s=HEARTBEAT_S) as stream:
            await next_of(stream, StreamConnected)
            first = await play_and_follow(stream, genesys, conversation_id)
            second = await play_and_follow(stream, genesys, conversation_id)  # after a completed one
            await asyncio.to_thread(control.press, conversation_id, "7")
            dtmf = await next_of(stream, Dtmf)
            await asyncio.to_thread(control.speak, conversation_id, "cancel my order")
            return first, second, dtmf, await next_of(stream, Transcription)

    first, second, dtmf, transcription = run(scenario())
    assert_every_event_of_one_playback(first, control.truth())
    assert_every_event_of_one_playback(second, control.truth())
    assert (dtmf.conversation_id, dtmf.digit) == (conversation_id, "7")
    (utterance,) = transcription.utterances
    assert (transcription.conversation_id, utterance.transcript, utterance.is_final) == (
        conversation_id, "cancel my order", True)


def test_the_stream_survives_a_dropped_socket(sandbox, control, genesys):
    conversation_id = control.place_call()
    topic = playback_topic(conversation_id)

    async def scenario():
        async with NotificationStream(genesys, [topic], heartbeat_interval_s=HEARTBEAT_S) as stream:
            first = await next_of(stream, StreamConnected)
            await asyncio.to_thread(control.faults, stream_drop_every_s=TIME_SCALE * 0.5)
            dropped = await next_of(stream, StreamDisconnected)
            await asyncio.to_thread(control.faults, stream_drop_every_s=None)
            second = await next_of(stream, StreamConnected)
            return first, dropped, second, await play_and_follow(stream, genesys, conversation_id)

    first, dropped, second, events = run(scenario())
    assert "ConnectionClosed" in dropped.reason
    assert second.channel_id == first.channel_id  # the channel outlived its socket: reused
    assert_every_event_of_one_playback(events, control.truth())
    assert subscribers(sandbox, topic) == [second.channel_id]


def test_socket_closing_moves_to_a_new_channel_and_resubscribes(sandbox, control, genesys):
    conversation_id = control.place_call()
    topic = playback_topic(conversation_id)

    async def scenario():
        async with NotificationStream(genesys, [topic], heartbeat_interval_s=HEARTBEAT_S) as stream:
            first = await next_of(stream, StreamConnected)
            await asyncio.to_thread(control.faults, socket_closing_now=True)
            closing_notice = await next_of(stream, StreamDisconnected)
            second = await next_of(stream, StreamConnected)
            return first, closing_notice, second, await play_and_follow(stream, genesys, conversation_id)

    first, closing_notice, second, events = run(scenario())
    assert closing_notice.reason == "socket closing"
    assert second.channel_id != first.channel_id
    assert_every_event_of_one_playback(events, control.truth())
    assert subscribers(sandbox, topic) == [second.channel_id]  # not also on the abandoned channel


def test_the_stream_reconnects_with_a_fresh_token_after_the_old_one_expired(transport):
    # At 500× a 100-second token lives 0.2 s of real time: it is dead long before the reconnect.
    with running_sandbox(seed=0, time_scale=500.0, token_ttl_s=100) as sandbox, \
            closing(SandboxControl(sandbox)) as control, client_for(sandbox, transport=transport) as genesys:
        conversation_id = control.place_call()
        topic = playback_topic(conversation_id)

        async def scenario():
            async with NotificationStream(genesys, [topic], heartbeat_interval_s=0.5) as stream:
                first = await next_of(stream, StreamConnected)
                await asyncio.sleep(0.4)
                await asyncio.to_thread(control.faults, socket_closing_now=True)
                await next_of(stream, StreamDisconnected)
                second = await next_of(stream, StreamConnected)
                await asyncio.sleep(0.4)  # and again: the next token has expired as well
                await asyncio.to_thread(control.faults, socket_closing_now=True)
                await next_of(stream, StreamDisconnected)
                third = await next_of(stream, StreamConnected)
                return first, second, third

        first, second, third = run(scenario())
        assert len({first.channel_id, second.channel_id, third.channel_id}) == 3
        assert transport.statuses("POST", "/oauth/token") == [200, 200, 200]
        assert 401 not in [status for _, _, status, _ in transport.exchanges]  # refreshed before use
        assert transport.statuses("POST", "/notifications/channels") == [200, 200, 200]
        assert subscribers(sandbox, topic) == [third.channel_id]


def test_topics_added_and_removed_while_connected_are_subscribed_once(sandbox, control, genesys):
    calls = [control.place_call() for _ in range(5)]

    async def scenario():
        stream = NotificationStream(genesys, [playback_topic(c) for c in calls[:3]],
                                    heartbeat_interval_s=HEARTBEAT_S, max_topics_per_channel=2)
        async with stream:
            await next_of(stream, StreamConnected)
            await next_of(stream, StreamConnected)
            # Drop the first call, add the last two: they fill the room left, no third channel.
            await stream.set_topics([playback_topic(c) for c in calls[1:]])
            events = await play_and_follow(stream, genesys, calls[4])
            return events, sorted(stream.channel_ids)

    events, channel_ids = run(scenario())
    assert_every_event_of_one_playback(events, control.truth())
    assert subscribers(sandbox, playback_topic(calls[0])) == []
    for conversation_id in calls[1:]:
        assert len(subscribers(sandbox, playback_topic(conversation_id))) == 1
    assert len(channel_ids) == 2

"""Fan-out of notifications: every event goes to the stream hub and, if it is a
playback event, to the registered webhooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .randomness import SeededStream

PLAYBACK_EVENT_TYPE = "conversation:voice:playback"

Sink = Callable[[str, dict[str, Any]], None]


def playback_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.playback"


def dtmf_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.dtmf"


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


def envelope(topic: str, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    """The notification envelope used on the stream and by webhooks."""
    return {"topicName": topic, "version": "2", "eventBody": body,
            "metadata": {"CorrelationId": correlation_id}}


class Publisher:
    """Wraps each event in one envelope (one CorrelationId) and hands it to the sinks."""

    def __init__(self, ids: SeededStream) -> None:
        self._ids = ids
        self._stream_sinks: list[Sink] = []
        self._webhook_sinks: list[Sink] = []

    def to_stream(self, sink: Sink) -> None:
        """`sink(topic, notification)` gets every notification."""
        self._stream_sinks.append(sink)

    def to_webhooks(self, sink: Sink) -> None:
        """`sink(event_type, notification)` gets every playback notification."""
        self._webhook_sinks.append(sink)

    def publish(self, topic: str, body: dict[str, Any], event_type: str | None = None) -> None:
        notification = envelope(topic, body, self._ids.uuid())
        for sink in self._stream_sinks:
            sink(topic, notification)
        if event_type:
            for sink in self._webhook_sinks:
                sink(event_type, notification)

"""What the notification stream yields, and how one WebSocket message becomes it (§8).

Playback notifications become the ledger's own `ReceivedEvent` (a `PlaybackEvent` with the
event id that makes redeliveries recognisable and the raw payload), parsed by the same
code as webhook deliveries. DTMF and transcription notifications become `Dtmf` and
`Transcription`. The stream adds `StreamConnected` / `StreamDisconnected` so a consumer
knows when events may have been missed (nothing is kept for a disconnected channel).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Union

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from ..ledger.events import ReceivedEvent
from ..logs import get_logger
from .payloads import PayloadError, parse_deliveries

METADATA_TOPIC = "channel.metadata"
SOCKET_CLOSING_TOPIC = "v2.system.socket_closing"
CONVERSATION_TOPIC = re.compile(r"^v2\.conversations\.(?P<conversation_id>[^.]+)\.(?P<kind>playback|dtmf|transcription)$")
log = get_logger("billing_sync.genesys.events")


def playback_topic(conversation_id: str) -> str:
    """The topic that carries a conversation's playback events."""
    return f"v2.conversations.{conversation_id}.playback"


def dtmf_topic(conversation_id: str) -> str:
    """The topic that carries the digits pressed in a conversation."""
    return f"v2.conversations.{conversation_id}.dtmf"


def transcription_topic(conversation_id: str) -> str:
    """The topic that carries a conversation's live transcription."""
    return f"v2.conversations.{conversation_id}.transcription"


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A digit pressed on a call."""

    conversation_id: str
    digit: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recognised stretch of speech (the best alternative)."""

    utterance_id: str
    is_final: bool
    channel: str | None
    transcript: str
    confidence: float | None
    offset_ms: int | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class Transcription:
    """Speech recognised on a call."""

    conversation_id: str
    communication_id: str | None
    occurred_at: datetime
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """A channel is connected and subscribed: its topics' events from now on are delivered."""

    channel_id: str
    topics: int


@dataclass(frozen=True, slots=True)
class StreamDisconnected:
    """A channel lost its connection; events on its topics are missed until it reconnects."""

    channel_id: str | None
    reason: str


StreamEvent = Union[ReceivedEvent, Dtmf, Transcription, StreamConnected, StreamDisconnected]


class EventTime(fields.AwareDateTime):
    """An instant as ISO 8601 with a zone, or as epoch milliseconds (both occur in Genesys bodies)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None
        return super()._deserialize(value, attr, data, **kwargs)


class _Inbound(Schema):
    class Meta:
        unknown = EXCLUDE


class DtmfSchema(_Inbound):
    conversationId = fields.String(required=True, validate=validate.Length(min=1))
    digit = fields.String(required=True, validate=validate.Regexp(r"^[0-9A-D*#]$"))
    timestamp = fields.AwareDateTime(required=True)

    @post_load
    def _dtmf(self, data: dict[str, Any], **_: Any) -> Dtmf:
        return Dtmf(conversation_id=data["conversationId"], digit=data["digit"], occurred_at=data["timestamp"])


class AlternativeSchema(_Inbound):
    transcript = fields.String(required=True)
    confidence = fields.Float(allow_none=True, load_default=None)
    offsetMs = fields.Integer(allow_none=True, load_default=None)
    durationMs = fields.Integer(allow_none=True, load_default=None)


class TranscriptSchema(_Inbound):
    utteranceId = fields.String(required=True)
    isFinal = fields.Boolean(required=True)
    channel = fields.String(allow_none=True, load_default=None)
    alternatives = fields.List(fields.Nested(AlternativeSchema), required=True, validate=validate.Length(min=1))

    @post_load
    def _utterance(self, data: dict[str, Any], **_: Any) -> Utterance:
        best = data["alternatives"][0]
        return Utterance(
            utterance_id=data["utteranceId"], is_final=data["isFinal"], channel=data["channel"],
            transcript=best["transcript"], confidence=best["confidence"],
            offset_ms=best["offsetMs"], duration_ms=best["durationMs"],
        )


class TranscriptionSchema(_Inbound):
    conversationId = fields.String(required=True, validate=validate.Length(min=1))
    communicationId = fields.String(allow_none=True, load_default=None)
    eventTime = EventTime(required=True)
    transcripts = fields.List(fields.Nested(TranscriptSchema), load_default=list)

    @post_load
    def _transcription(self, data: dict[str, Any], **_: Any) -> Transcription:
        return Transcription(
            conversation_id=data["conversationId"], communication_id=data["communicationId"],
            occurred_at=data["eventTime"], utterances=tuple(data["transcripts"]),
        )


_dtmf = DtmfSchema()
_transcription = TranscriptionSchema()


@dataclass(frozen=True, slots=True)
class Message:
    """One WebSocket message, classified: channel metadata, a socket-closing notice, or an event."""

    topic: str
    event: ReceivedEvent | Dtmf | Transcription | None = None

    @property
    def is_metadata(self) -> bool:
        return self.topic == METADATA_TOPIC

    @property
    def is_socket_closing(self) -> bool:
        return self.topic == SOCKET_CLOSING_TOPIC


def parse_message(raw: str | bytes) -> Message | None:
    """The message's topic and typed event; None (and a warning) for anything unusable."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.warning("genesys.stream.unreadable_message")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("topicName"), str):
        log.warning("genesys.stream.unreadable_message")
        return None
    topic = data["topicName"]
    match = CONVERSATION_TOPIC.match(topic)
    if match is None:
        return Message(topic=topic)
    try:
        return Message(topic=topic, event=_event_of(match["kind"], data))
    except (PayloadError, ValidationError) as error:
        # One bad event must not stop the stream; reconciliation fills the gap.
        log.warning("genesys.stream.invalid_event", topic=topic, error=str(error)[:300])
        return Message(topic=topic)


def _event_of(kind: str, data: dict[str, Any]) -> ReceivedEvent | Dtmf | Transcription:
    if kind == "playback":
        return parse_deliveries(data)[0]
    body = data.get("eventBody")
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "eventBody")
    return _dtmf.load(body) if kind == "dtmf" else _transcription.load(body)

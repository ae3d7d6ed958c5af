"""Playback event payloads (contract §6, §7) and the three shapes that carry them.

A delivery is one JSON value: a notification envelope, a bare event, an Amazon
EventBridge envelope, or an array of any of these (a batch). `parse_deliveries` validates
all of it before anything is written and names the first bad field with its index.
Unknown fields are ignored; the fields we use are strict.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from ..validation import MAX_INT32, Instant, find_nul, first_error
from ..ledger.events import STATES, PlaybackEvent, ReceivedEvent

EVENT_TYPE = "conversation:voice:playback"
# No named group: the pattern is published in the OpenAPI document, where (?P<…>) is not a regex.
TOPIC = re.compile(r"^v2\.conversations\.([^.]+)\.playback$")
MAX_BATCH = 500

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class PayloadError(ValueError):
    """A delivery that does not match the contract; `errors` maps each path to messages."""

    def __init__(self, message: str, errors: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class PlaybackEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(validate=validate.Length(min=1, max=128))
    eventType = fields.String(validate=validate.Equal(EVENT_TYPE))
    conversationId = _id
    playbackId = _id
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    duration = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_INT32))
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_INT32))
    mediaUrl = fields.String(allow_none=True, validate=validate.Length(max=2048))
    timestamp = Instant(required=True)


class NotificationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    topicName = fields.String(required=True, validate=validate.Regexp(TOPIC))
    version = fields.String()
    eventBody = fields.Nested(PlaybackEventSchema, required=True)
    metadata = fields.Dict()

    @validates_schema
    def _topic_names_the_conversation(self, data: dict, **_: Any) -> None:
        match = TOPIC.match(data.get("topicName", ""))
        body = data.get("eventBody") or {}
        if match and body and match[1] != body.get("conversationId"):
            raise ValidationError("does not name eventBody.conversationId", "topicName")


class EventBridgeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    # Its presence tells this envelope from a bare event; its value is not used.
    detail_type = fields.Raw(required=True, allow_none=True, data_key="detail-type",
                             metadata={"description": "the topic name"})
    detail = fields.Nested(NotificationSchema, required=True)


class BatchTooLarge(PayloadError):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"Batch of {size} events exceeds the limit of {MAX_BATCH}", {"_schema": ["too large"]}
        )



_event = PlaybackEventSchema()
_notification = NotificationSchema()
_eventbridge = EventBridgeSchema()


def parse_deliveries(data: Any) -> list[ReceivedEvent]:
    """Every event in one delivery, or `PayloadError` naming the first bad field."""
    if isinstance(data, list):
        if not data:
            raise PayloadError("Empty batch: expected at least one event", {"_schema": ["empty"]})
        if len(data) > MAX_BATCH:
            raise BatchTooLarge(len(data))
        return [_parse_one(item, index) for index, item in enumerate(data)]
    return [_parse_one(data, None)]


def refuse_nul(data: Any) -> None:
    """PayloadError naming the first string or key, anywhere in a delivery, that holds a NUL character.

    The delivery is stored whole and PostgreSQL text and JSON cannot hold NUL.
    """
    path = find_nul(data)
    if path is not None:
        index, _, field = path.partition(".") if isinstance(data, list) else (None, "", path)
        _fail(None if index is None else int(index), {field or "(value)": ["must not contain NUL characters"]})


def _parse_one(item: Any, index: int | None) -> ReceivedEvent:
    return _parse_well_formed(item) or _parse_with_schema(item, index)


def _parse_well_formed(item: Any) -> ReceivedEvent | None:
    """The event if every field we use is exactly right, else None for the schema to diagnose.

    Ingest is the hot path and marshmallow costs tens of microseconds an event. This check
    accepts a strict subset of what the schemas accept (a test holds it to that), so the
    schemas stay the definition and produce every error message.
    """
    if type(item) is not dict:
        return None
    if "detail" in item and "detail-type" in item:
        envelope_id = item.get("id")
        if not (type(envelope_id) is str and 0 < len(envelope_id) <= 128):
            return None
        notification = item["detail"]
    else:
        envelope_id, notification = None, item
    if "eventBody" in notification if type(notification) is dict else False:
        body = notification["eventBody"]
        topic = notification.get("topicName")
        match = TOPIC.match(topic) if type(topic) is str else None
        if (match is None or type(body) is not dict or match[1] != body.get("conversationId")
                or type(notification.get("version", "")) is not str
                or type(notification.get("metadata", {})) is not dict):
            return None
    elif envelope_id is None:
        body = item
    else:
        return None
    event = _well_formed_event(body)
    if event is None:
        return None
    event_id = body.get("id")
    return ReceivedEvent(event_id or envelope_id or _content_hash(body), event, item)


def _well_formed_event(body: dict) -> PlaybackEvent | None:
    conversation_id, playback_id = body.get("conversationId"), body.get("playbackId")
    state, duration, sequence = body.get("state"), body.get("duration"), body.get("sequence")
    timestamp, media_url = body.get("timestamp"), body.get("mediaUrl")
    event_id = body.get("id", "-")
    if not (
        type(conversation_id) is str and 0 < len(conversation_id) <= 64
        and type(playback_id) is str and 0 < len(playback_id) <= 64
        and state in STATES
        and type(duration) is int and 0 <= duration <= MAX_INT32
        and type(sequence) is int and 0 <= sequence <= MAX_INT32
        and type(timestamp) is str
        and (media_url is None or (type(media_url) is str and len(media_url) <= 2048))
        and type(event_id) is str and 0 < len(event_id) <= 128
        and body.get("eventType", EVENT_TYPE) == EVENT_TYPE
    ):
        return None
    try:
        occurred_at = datetime.fromisoformat(timestamp)
        if occurred_at.utcoffset() is None:
            return None
        # In UTC, as the schema's Instant: PostgreSQL refuses offsets past ±15:59, and storing
        # needs the instant within the years 1 to 9999 in UTC.
        occurred_at = occurred_at.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return PlaybackEvent(conversation_id, playback_id, state, duration, sequence, occurred_at, media_url)


def _parse_with_schema(item: Any, index: int | None) -> ReceivedEvent:
    if not isinstance(item, dict):
        _fail(index, {"_schema": ["must be a JSON object"]})
    try:
        if "detail" in item and "detail-type" in item:
            loaded = _eventbridge.load(item)
            body, raw_body, fallback_id = loaded["detail"]["eventBody"], item["detail"]["eventBody"], loaded["id"]
        elif "eventBody" in item:
            body, raw_body, fallback_id = _notification.load(item)["eventBody"], item["eventBody"], None
        else:
            body, raw_body, fallback_id = _event.load(item), item, None
    except ValidationError as error:
        _fail(index, error.normalized_messages())
    return ReceivedEvent(
        source_event_id=body.get("id") or fallback_id or _content_hash(raw_body),
        event=PlaybackEvent(
            conversation_id=body["conversationId"],
            playback_id=body["playbackId"],
            state=body["state"],
            duration_ms=body["duration"],
            sequence=body["sequence"],
            occurred_at=body["timestamp"],
            media_url=body.get("mediaUrl"),
        ),
        payload=item,
    )


def _content_hash(event: dict) -> str:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _fail(index: int | None, errors: dict[str, Any]) -> None:
    path, message = first_error(errors)
    where = "Invalid event" if index is None else f"Invalid event at index {index}"
    raise PayloadError(f"{where}: {path}: {message}", errors if index is None else {str(index): errors})

"""marshmallow schemas for every REST body sent to or read from Genesys Cloud.

Inbound schemas ignore fields they do not know (Genesys adds fields freely) and are strict
about the ones this client uses: required, typed, timezone-aware. Outbound schemas check a
body before it leaves, so a caller's mistake is a ValueError here, not a 400 there.
Notification-stream payloads are in events.py.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, post_load, validate

from .models import (
    Call,
    Channel,
    ConversationPlaybacks,
    Participant,
    Playback,
    StoppedPlayback,
    Subscription,
    Webhook,
)

MAX_PAGE_SIZE = 100
MAX_TOPICS_PER_CHANNEL = 1000
PLAYBACK_EVENT_FILTER = "conversation:voice:playback"
PLAYBACK_METRICS = ("nPlayback", "nPlaybackCompleted", "tPlayback")

_http_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                       validate=validate.Length(max=2048))


class Inbound(Schema):
    class Meta:
        unknown = EXCLUDE


class Outbound(Schema):
    # What we send is ours: an unknown key is a bug in this package, not a Genesys addition.
    class Meta:
        unknown = RAISE


# --- conversations (§4) -----------------------------------------------------------------


class ParticipantSchema(Inbound):
    id = fields.String(required=True)
    purpose = fields.String(required=True)
    state = fields.String(required=True)
    direction = fields.String(allow_none=True, load_default=None)
    ani = fields.String(allow_none=True, load_default=None)
    dnis = fields.String(allow_none=True, load_default=None)
    held = fields.Boolean(allow_none=True, load_default=False)
    muted = fields.Boolean(allow_none=True, load_default=False)
    connectedTime = fields.AwareDateTime(allow_none=True, load_default=None)
    endTime = fields.AwareDateTime(allow_none=True, load_default=None)

    @post_load
    def _participant(self, data: dict[str, Any], **_: Any) -> Participant:
        return Participant(
            id=data["id"], purpose=data["purpose"], state=data["state"],
            direction=data["direction"], ani=data["ani"], dnis=data["dnis"],
            held=bool(data["held"]), muted=bool(data["muted"]),
            connected_time=data["connectedTime"], end_time=data["endTime"],
        )


class CallSchema(Inbound):
    id = fields.String(required=True)
    participants = fields.List(fields.Nested(ParticipantSchema), required=True)
    recordingState = fields.String(allow_none=True, load_default=None)
    state = fields.String(allow_none=True, load_default=None)

    @post_load
    def _call(self, data: dict[str, Any], **_: Any) -> Call:
        return Call(id=data["id"], participants=tuple(data["participants"]),
                    recording_state=data["recordingState"], state=data["state"])


# --- playback control (§5) --------------------------------------------------------------


class PlayOptionsSchema(Outbound):
    url = _http_url
    loop = fields.Boolean(required=True)
    maxDuration = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class PlayRequestSchema(Outbound):
    play = fields.Nested(PlayOptionsSchema, required=True)


class PlaybackSchema(Inbound):
    id = fields.String(required=True, validate=validate.Length(min=1))
    conversationId = fields.String(required=True)
    state = fields.String(required=True)
    mediaUrl = fields.String(allow_none=True, load_default=None)
    loop = fields.Boolean(load_default=False)
    maxDuration = fields.Integer(allow_none=True, load_default=None)

    @post_load
    def _playback(self, data: dict[str, Any], **_: Any) -> Playback:
        return Playback(id=data["id"], conversation_id=data["conversationId"], state=data["state"],
                        media_url=data["mediaUrl"], loop=data["loop"], max_duration_s=data["maxDuration"])


class StoppedPlaybackSchema(Inbound):
    id = fields.String(required=True)
    state = fields.String(required=True)

    @post_load
    def _stopped(self, data: dict[str, Any], **_: Any) -> StoppedPlayback:
        return StoppedPlayback(id=data["id"], state=data["state"])


# --- webhooks (§7) ----------------------------------------------------------------------


class WebhookWriteSchema(Outbound):
    name = fields.String(required=True, validate=validate.Length(min=1, max=256))
    eventFilters = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    address = _http_url
    method = fields.String(required=True, validate=validate.OneOf(["POST"]))
    enabled = fields.Boolean(required=True)
    authScheme = fields.String(required=True, validate=validate.OneOf(["basic"]))
    authUsername = fields.String(required=True, validate=validate.Length(min=1))
    authPassword = fields.String(required=True, validate=validate.Length(min=1))


class WebhookSchema(Inbound):
    id = fields.String(required=True)
    name = fields.String(required=True)
    address = fields.String(required=True)
    eventFilters = fields.List(fields.String(), load_default=list)
    method = fields.String(load_default="POST")
    enabled = fields.Boolean(load_default=True)
    authScheme = fields.String(allow_none=True, load_default=None)
    authUsername = fields.String(allow_none=True, load_default=None)

    @post_load
    def _webhook(self, data: dict[str, Any], **_: Any) -> Webhook:
        return Webhook(id=data["id"], name=data["name"], address=data["address"],
                       event_filters=tuple(data["eventFilters"]), method=data["method"],
                       enabled=data["enabled"], auth_scheme=data["authScheme"],
                       auth_username=data["authUsername"])


class WebhookPageSchema(Inbound):
    entities = fields.List(fields.Nested(WebhookSchema), load_default=list)
    pageSize = fields.Integer(load_default=None, allow_none=True)
    pageNumber = fields.Integer(load_default=None, allow_none=True)
    total = fields.Integer(load_default=None, allow_none=True)
    pageCount = fields.Integer(load_default=None, allow_none=True)


# --- notification channels (§8) ---------------------------------------------------------


class ChannelSchema(Inbound):
    id = fields.String(required=True, validate=validate.Length(min=1))
    connectUri = fields.Url(required=True, schemes={"ws", "wss"}, require_tld=False)
    expires = fields.AwareDateTime(required=True)

    @post_load
    def _channel(self, data: dict[str, Any], **_: Any) -> Channel:
        return Channel(id=data["id"], connect_uri=data["connectUri"], expires=data["expires"])


class TopicSchema(Outbound):
    id = fields.String(required=True, validate=validate.Length(min=1, max=256))


class SubscriptionSchema(Inbound):
    id = fields.String(required=True)
    state = fields.String(allow_none=True, load_default=None)

    @post_load
    def _subscription(self, data: dict[str, Any], **_: Any) -> Subscription:
        return Subscription(topic=data["id"], state=data["state"])


class SubscriptionListSchema(Inbound):
    entities = fields.List(fields.Nested(SubscriptionSchema), load_default=list)


# --- analytics (§9) ---------------------------------------------------------------------


class PagingSchema(Outbound):
    pageSize = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    pageNumber = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class PredicateSchema(Outbound):
    dimension = fields.String(required=True)
    value = fields.String(required=True)


class SegmentFilterSchema(Outbound):
    type = fields.String(required=True, validate=validate.OneOf(["and", "or"]))
    predicates = fields.List(fields.Nested(PredicateSchema), required=True)


class DetailsQuerySchema(Outbound):
    interval = fields.String(required=True, validate=validate.Regexp(r"^\S+Z/\S+Z$"))
    order = fields.String(required=True, validate=validate.OneOf(["asc", "desc"]))
    orderBy = fields.String(required=True)
    paging = fields.Nested(PagingSchema, required=True)
    segmentFilters = fields.List(fields.Nested(SegmentFilterSchema), required=True)


class MetricSchema(Inbound):
    name = fields.String(required=True)
    # Counts and milliseconds; Genesys types them as long, some serialisers write 3.0.
    value = fields.Integer(required=True)


class SessionSchema(Inbound):
    mediaType = fields.String(allow_none=True, load_default=None)
    metrics = fields.List(fields.Nested(MetricSchema), load_default=list)


class AnalyticsParticipantSchema(Inbound):
    purpose = fields.String(allow_none=True, load_default=None)
    sessions = fields.List(fields.Nested(SessionSchema), load_default=list)


class ConversationDetailSchema(Inbound):
    conversationId = fields.String(required=True)
    conversationStart = fields.AwareDateTime(allow_none=True, load_default=None)
    participants = fields.List(fields.Nested(AnalyticsParticipantSchema), load_default=list)

    @post_load
    def _playbacks(self, data: dict[str, Any], **_: Any) -> ConversationPlaybacks:
        totals = dict.fromkeys(PLAYBACK_METRICS, 0)
        for participant in data["participants"]:
            # The metrics sit on the caller's voice session (contract §9); agents' are not ours.
            if participant["purpose"] not in ("customer", "external"):
                continue
            for session in participant["sessions"]:
                if session["mediaType"] not in (None, "voice"):
                    continue
                for metric in session["metrics"]:
                    if metric["name"] in totals:
                        totals[metric["name"]] += metric["value"]
        return ConversationPlaybacks(
            conversation_id=data["conversationId"], started_at=data["conversationStart"],
            playbacks=totals["nPlayback"], completed=totals["nPlaybackCompleted"],
            played_ms=totals["tPlayback"],
        )


class DetailsPageSchema(Inbound):
    # Genesys omits `conversations` altogether when nothing matched.
    conversations = fields.List(fields.Nested(ConversationDetailSchema), load_default=list)
    totalHits = fields.Integer(required=True, validate=validate.Range(min=0))

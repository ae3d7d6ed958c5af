"""GET /api/v1/playbacks: the ledger's state of each playback, with its events."""

from __future__ import annotations

from flask_smorest import abort
from marshmallow import Schema, fields, validate

from .. import services
from ..ledger import queries
from ..ledger.events import SOURCES, STATES
from ..validation import Instant
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .pagination import PageArgs, check_window, decode_cursor, page_answer, page_schema

bp = Blueprint("playbacks", __name__, url_prefix="/api/v1/playbacks", description="Ledger state")
PLAYBACK_STATES = ("requested", *STATES)


class PlaybackFilterArgs(PageArgs):
    conversation_id = fields.String(validate=validate.Length(min=1, max=64))
    state = fields.String(validate=validate.OneOf(PLAYBACK_STATES))
    since = Instant(metadata={"description": "started at or after (ISO 8601 with offset)"})
    until = Instant(metadata={"description": "started before"})


class EventSchema(Schema):
    event_id = fields.String(required=True, attribute="source_event_id")
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    state = fields.String(required=True)
    duration_ms = fields.Integer(required=True)
    sequence = fields.Integer(required=True)
    occurred_at = fields.DateTime(required=True)
    received_at = fields.DateTime(required=True)


class PlaybackSchema(Schema):
    playback_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(PLAYBACK_STATES))
    duration_ms = fields.Integer(required=True)
    media_url = fields.String(required=True, allow_none=True)
    requested_by = fields.Integer(required=True, allow_none=True, metadata={"description": "API key id"})
    started_at = fields.DateTime(required=True, allow_none=True)
    ended_at = fields.DateTime(required=True, allow_none=True)
    events = fields.List(fields.Nested(EventSchema), required=True)


PlaybackPageSchema = page_schema("PlaybackPage", PlaybackSchema)


@bp.route("")
@bp.doc(**BEARER_DOC)
@require_role("viewer")
@bp.arguments(PlaybackFilterArgs, location="query")
@bp.response(200, PlaybackPageSchema)
def list_playbacks(args):
    """Playbacks in ledger order, filtered; follow `next_cursor` for the next page."""
    check_window(args.get("since"), args.get("until"))
    with services().db.read() as session:
        page = queries.list_playbacks(
            session,
            after_id=decode_cursor(args.get("cursor")),
            limit=args["limit"],
            conversation_id=args.get("conversation_id"),
            state=args.get("state"),
            since=args.get("since"),
            until=args.get("until"),
        )
    return page_answer(page.items, page.last_id, page.more)


@bp.route("/<text_id:playback_id>")
@bp.doc(**BEARER_DOC)
@require_role("viewer")
@bp.response(200, PlaybackSchema)
def get_playback(playback_id: str):
    """One playback and every event the ledger holds for it."""
    with services().db.read() as session:
        playback = queries.get_playback(session, playback_id)
    if playback is None:
        abort(404, message=f"No playback {playback_id!r} in the ledger")
    return playback

"""POST /api/v1/conversations/{id}/playbacks[/stop|/switch]: admins control media on live calls."""

from __future__ import annotations

import re

from flask import g, request
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from .. import services
from ..playback.control import DEFAULT_MAX_DURATION_S, MAX_DURATION_S, PlayRequest, Requester
from ..playback.errors import PlaybackError
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .control_errors import abort_for

bp = Blueprint("playback_control", __name__, url_prefix="/api/v1/conversations",
               description="Start, stop and switch media on live calls (admin)")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_CONVERSATION_ID = re.compile(r"^[^/\s\x00]{1,64}$")
IDEMPOTENCY_DOC = {"parameters": [{
    "in": "header", "name": IDEMPOTENCY_HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _KEY.pattern},
    "description": "a retry with the same key (within 24 h) gets the first answer and plays nothing new",
}]}
CONVERSATION_PARAMETER = [{
    "in": "path", "name": "conversation_id", "description": "the Genesys Cloud conversation (call) id",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _CONVERSATION_ID.pattern},
}]
ERRORS_DOC = {
    400: "Invalid body, or a media URL that breaks a rule (the message names it)",
    404: "Genesys Cloud knows no such conversation (or, for stop, nothing is playing)",
    409: "The conversation is not playable, or the Idempotency-Key is in use",
    422: "The Idempotency-Key was used for a different request",
    502: "Genesys Cloud refused our OAuth client (the message names the missing scope) or failed",
    503: "Genesys Cloud is rate-limiting us (see Retry-After), or control is not configured",
    504: "Genesys Cloud did not answer in time",
}


class PlayArgs(Schema):
    media_url = fields.String(required=True, metadata={"description": "https URL of .wav .mp3 .ogg .opus .g711 .g729"})
    loop = fields.Boolean(load_default=False)
    max_duration_s = fields.Integer(load_default=DEFAULT_MAX_DURATION_S, strict=True,
                                    validate=validate.Range(min=1, max=MAX_DURATION_S))


class StartedSchema(Schema):
    playback_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "`requested`: Genesys Cloud accepted it"})
    media_url = fields.String(required=True)
    loop = fields.Boolean(required=True)
    max_duration_s = fields.Integer(required=True)
    requested_by = fields.Integer(required=True, allow_none=True, metadata={"description": "API key id"})
    requested_at = fields.DateTime(required=True)


class StoppedSchema(Schema):
    playback_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    state = fields.String(required=True)


class SwitchedSchema(Schema):
    stopped_playback_id = fields.String(required=True, allow_none=True)
    started = fields.Nested(StartedSchema, required=True)


def _document_errors(view):
    for status, description in ERRORS_DOC.items():
        view = bp.alt_response(status, description=description)(view)
    return view


@bp.route("/<string:conversation_id>/playbacks", methods=["POST"], parameters=CONVERSATION_PARAMETER)
@bp.doc(**BEARER_DOC, **IDEMPOTENCY_DOC)
@require_role("admin")
@bp.arguments(PlayArgs)
@bp.response(201, StartedSchema)
@_document_errors
def start_playback(args, conversation_id: str):
    """Play media on a live call; recorded as `requested` by the calling key, and audited."""
    play = _play_request(conversation_id, args)
    try:
        started, replayed = services().control.start(play, _requester(), idempotency_key=_idempotency_key())
    except PlaybackError as error:
        abort_for(error)
    return started, _headers(replayed, started.playback_id)


@bp.route("/<string:conversation_id>/playbacks/stop", methods=["POST"], parameters=CONVERSATION_PARAMETER)
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.response(200, StoppedSchema)
@_document_errors
def stop_playback(conversation_id: str):
    """Stop what the call is playing; its ledger state follows from Genesys Cloud's events."""
    _check_conversation_id(conversation_id)
    try:
        return services().control.stop(conversation_id, _requester())
    except PlaybackError as error:
        abort_for(error)


@bp.route("/<string:conversation_id>/playbacks/switch", methods=["POST"], parameters=CONVERSATION_PARAMETER)
@bp.doc(**BEARER_DOC, **IDEMPOTENCY_DOC)
@require_role("admin")
@bp.arguments(PlayArgs)
@bp.response(201, SwitchedSchema)
@_document_errors
def switch_playback(args, conversation_id: str):
    """Stop what the call is playing (if anything) and play new media, in one call."""
    play = _play_request(conversation_id, args)
    try:
        switched, replayed = services().control.switch(play, _requester(), idempotency_key=_idempotency_key())
    except PlaybackError as error:
        abort_for(error)
    return switched, _headers(replayed, switched.started.playback_id)


def _play_request(conversation_id: str, args: dict) -> PlayRequest:
    _check_conversation_id(conversation_id)
    return PlayRequest(conversation_id=conversation_id, media_url=args["media_url"], loop=args["loop"],
                       max_duration_s=args["max_duration_s"])


def _check_conversation_id(conversation_id: str) -> None:
    if not _CONVERSATION_ID.match(conversation_id):
        abort(400, message="Invalid path: conversation_id: 1 to 64 characters, no '/' or spaces",
              errors={"path": {"conversation_id": ["invalid"]}})


def _requester() -> Requester:
    return Requester(actor=g.caller.actor, api_key_id=g.caller.key_id)


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        abort(400, message=f"Invalid header: {IDEMPOTENCY_HEADER}: 1 to 255 visible ASCII characters",
              errors={"headers": {IDEMPOTENCY_HEADER: ["invalid"]}})
    return key


def _headers(replayed: bool, playback_id: str) -> dict[str, str]:
    headers = {"Location": f"/api/v1/playbacks/{playback_id}"}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return headers

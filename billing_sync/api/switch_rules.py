"""GET/POST/DELETE /api/v1/switch-rules: a key press or a spoken word switches a call's media."""

from __future__ import annotations

from flask import g
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .. import services
from ..playback import rules
from ..playback.control import DEFAULT_MAX_DURATION_S, MAX_DURATION_S
from ..playback.errors import PlaybackError
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .control_errors import abort_for
from .pagination import PageArgs, decode_cursor, page_answer, page_schema

bp = Blueprint("switch_rules", __name__, url_prefix="/api/v1/switch-rules",
               description="Switching rules: DTMF or keyword switches media (admin)")

MAX_COOLDOWN_S = 86_400


class RuleArgs(Schema):
    dtmf = fields.String(validate=validate.Regexp(r"^[0-9*#A-D]$", error="must be one digit: 0-9, *, # or A-D"))
    keyword = fields.String(validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(r"^\s*[\w'-]+(\s+[\w'-]+)*\s*$", error="must be a word or words (letters, digits, ' and -)"),
    ], metadata={"description": "matched in final transcripts, whole word, case-insensitive"})
    media_url = fields.String(required=True)
    conversation_id = fields.String(validate=validate.Regexp(r"^[^/\s]{1,64}$"),
                                    metadata={"description": "default: every conversation"})
    cooldown_s = fields.Integer(load_default=rules.DEFAULT_COOLDOWN_S, strict=True,
                                validate=validate.Range(min=0, max=MAX_COOLDOWN_S))
    loop = fields.Boolean(load_default=False)
    max_duration_s = fields.Integer(load_default=DEFAULT_MAX_DURATION_S, strict=True,
                                    validate=validate.Range(min=1, max=MAX_DURATION_S))

    @validates_schema
    def _one_trigger(self, data: dict, **_) -> None:
        if ("dtmf" in data) == ("keyword" in data):
            raise ValidationError("give exactly one of dtmf or keyword", "dtmf")


class RuleSchema(Schema):
    id = fields.Integer(required=True)
    dtmf = fields.String(required=True, allow_none=True)
    keyword = fields.String(required=True, allow_none=True)
    media_url = fields.String(required=True)
    loop = fields.Boolean(required=True)
    max_duration_s = fields.Integer(required=True)
    conversation_id = fields.String(required=True, allow_none=True)
    cooldown_s = fields.Integer(required=True)
    created_by = fields.Integer(required=True, metadata={"description": "API key id"})
    created_at = fields.DateTime(required=True)


RulePageSchema = page_schema("RulePage", RuleSchema)


@bp.route("", methods=["GET"])
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.arguments(PageArgs, location="query")
@bp.response(200, RulePageSchema)
def list_rules(args):
    """Active rules, oldest first; follow `next_cursor` for the next page."""
    with services().db.read() as session:
        items, last_id, more = rules.list_rules(session, after_id=decode_cursor(args.get("cursor")),
                                                limit=args["limit"])
    return page_answer(items, last_id, more)


@bp.route("", methods=["POST"])
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.arguments(RuleArgs)
@bp.response(201, RuleSchema)
@bp.alt_response(400, description="Invalid body, or a media URL that breaks a rule (the message names it)")
def create_rule(args):
    """Add a rule; audited with the calling key as actor."""
    spec = rules.RuleSpec(**args)
    try:
        return rules.create_rule(services().db, spec, api_key_id=g.caller.key_id, actor=g.caller.actor,
                                 media=services().control.media)
    except PlaybackError as error:
        abort_for(error)


@bp.route("/<id(digits=9):rule_id>", methods=["GET"])
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.response(200, RuleSchema)
@bp.alt_response(404, description="No active rule with this id")
def get_rule(rule_id: int):
    """One active rule."""
    try:
        with services().db.read() as session:
            return rules.get_rule(session, rule_id)
    except PlaybackError as error:
        abort_for(error)


@bp.route("/<id(digits=9):rule_id>", methods=["DELETE"])
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.response(204)
@bp.alt_response(404, description="No active rule with this id")
def delete_rule(rule_id: int):
    """Retire a rule: it stops applying at once and stays on record; audited."""
    try:
        rules.retire_rule(services().db, rule_id, api_key_id=g.caller.key_id, actor=g.caller.actor)
    except PlaybackError as error:
        abort_for(error)

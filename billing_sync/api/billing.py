"""GET /api/v1/billing/records and /outbox, POST /outbox/{id}/replay: billing as delivered."""

from __future__ import annotations

from flask import g
from flask_smorest import abort
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from .. import services
from ..billing import outbox, queries
from ..models import OUTBOX_STATUSES, RECORD_KINDS, OutboxMessage
from ..validation import Instant
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .pagination import PageArgs, check_window, decode_cursor, page_answer, page_schema

bp = Blueprint("billing", __name__, url_prefix="/api/v1/billing", description="Billing records and delivery")


class RecordFilterArgs(PageArgs):
    playback_id = fields.String(validate=validate.Length(min=1, max=64))
    conversation_id = fields.String(validate=validate.Length(min=1, max=64))
    kind = fields.String(validate=validate.OneOf(RECORD_KINDS))
    since = Instant(metadata={"description": "created at or after (ISO 8601 with offset)"})
    until = Instant(metadata={"description": "created before"})


class OutboxFilterArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(OUTBOX_STATUSES))


class BillingRecordSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(RECORD_KINDS))
    playback_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    duration_ms = fields.Integer(required=True, metadata={"description": "played (a difference for corrections)"})
    billable_seconds = fields.Integer(required=True)
    rate_per_minute = fields.String(required=True, metadata={"description": "exact decimal, per minute"})
    amount_minor = fields.Integer(required=True, metadata={"description": "integer minor units of currency"})
    currency = fields.String(required=True, metadata={"description": "ISO 4217"})
    provenance = fields.String(required=True)
    corrects = fields.Integer(required=True, allow_none=True, metadata={"description": "record corrected"})
    created_at = fields.String(required=True, metadata={"format": "date-time"})


class OutboxMessageSchema(Schema):
    id = fields.Integer(required=True)
    record_id = fields.Integer(required=True)
    webhook_id = fields.String(required=True, metadata={"description": "the idempotency key, on every attempt"})
    status = fields.String(required=True, validate=validate.OneOf(OUTBOX_STATUSES))
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True)
    last_status = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


RecordPageSchema = page_schema("RecordPage", BillingRecordSchema)


OutboxPageSchema = page_schema("OutboxPage", OutboxMessageSchema)


@bp.route("/records")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(RecordFilterArgs, location="query")
@bp.response(200, RecordPageSchema)
def list_records(args):
    """Billing records in the order they were written; follow `next_cursor` for the next page."""
    check_window(args.get("since"), args.get("until"))
    with services().db.read() as session:
        page = queries.list_records(
            session, after_id=decode_cursor(args.get("cursor")), limit=args["limit"],
            playback_id=args.get("playback_id"), conversation_id=args.get("conversation_id"),
            kind=args.get("kind"), since=args.get("since"), until=args.get("until"),
        )
    return page_answer(page.items, page.last_id, page.more)


@bp.route("/outbox")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(OutboxFilterArgs, location="query")
@bp.response(200, OutboxPageSchema)
def list_outbox(args):
    """Delivery state of each message to the billing system, optionally of one status."""
    with services().db.read() as session:
        page = queries.list_outbox(session, after_id=decode_cursor(args.get("cursor")), limit=args["limit"],
                                   status=args.get("status"))
    return page_answer(page.items, page.last_id, page.more)


@bp.route("/outbox/<id:outbox_id>/replay", methods=["POST"])
@bp.doc(**BEARER_DOC)
@require_role("admin")
@bp.response(200, OutboxMessageSchema)
@bp.alt_response(404, description="No such outbox message")
@bp.alt_response(409, description="The message is not dead")
def replay_message(outbox_id: int):
    """Put a dead message back in the queue with a fresh retry schedule (audited)."""
    try:
        with services().db.transaction() as connection:
            outbox.replay_dead(connection, actor=g.caller.actor, ids=[outbox_id])
    except outbox.ReplayError as error:
        abort(error.status, message=error.message)
    with services().db.read() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.id == outbox_id)).one()
        return queries.outbox_json(row)

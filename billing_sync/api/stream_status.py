"""GET /api/v1/stream: each stream listener shard's connection state."""

from __future__ import annotations

from marshmallow import Schema, fields
from sqlalchemy import select

from .. import services
from ..models import StreamListener
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint

bp = Blueprint("stream_status", __name__, url_prefix="/api/v1/stream", description="Stream listener state")


class ListenerSchema(Schema):
    shard = fields.String(required=True, metadata={"description": "i/N"})
    state = fields.String(required=True, metadata={"description": "starting, idle, connected, disconnected, stopped"})
    channels_connected = fields.Integer(required=True)
    topics = fields.Integer(required=True)
    connects = fields.Integer(required=True)
    disconnects = fields.Integer(required=True)
    last_reason = fields.String(required=True, allow_none=True)
    host = fields.String(required=True)
    pid = fields.Integer(required=True)
    started_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ListenersSchema(Schema):
    listeners = fields.List(fields.Nested(ListenerSchema), required=True)


@bp.route("", methods=["GET"])
@bp.doc(**BEARER_DOC)
@require_role("viewer")
@bp.response(200, ListenersSchema)
def stream_state():
    """Every listener shard that has run, with its last known connection state."""
    with services().db.read() as session:
        rows = list(session.scalars(select(StreamListener).order_by(StreamListener.shard)))
    return {"listeners": rows}

"""POST /webhooks/genesys: Genesys Cloud delivers playback events here.

Tiny on purpose: check the credentials, parse the raw bytes, hand the events to the
ledger (one transaction, shared with concurrent requests by group commit), answer only
after the commit. This view is the reference: `webhook_wsgi` answers the common case
(right credentials, a body that parses and matches the contract) without Flask, with the
same answer, and hands every other request to this view.
"""

from __future__ import annotations

import hmac
import json

from flask import current_app, request
from flask_smorest import abort
from marshmallow import Schema, fields

from .. import services
from ..genesys.payloads import (
    MAX_BATCH, BatchTooLarge, EventBridgeSchema, NotificationSchema, PayloadError, PlaybackEventSchema,
    parse_deliveries, refuse_nul,
)
from ..ledger.events import ReceivedEvent
from ..ledger.ingest import IngestResult
from ..metrics.instruments import count_webhook_events
from .blueprint import Blueprint

bp = Blueprint("webhooks", __name__, description="Inbound Genesys Cloud webhooks")


class IngestResultSchema(Schema):
    accepted = fields.Integer(required=True, metadata={"description": "events new to the ledger"})
    duplicates = fields.Integer(required=True, metadata={"description": "events already known"})


# The three shapes that carry a playback event (contract §6, §7), as OpenAPI components.
DELIVERY_SCHEMAS = {"PlaybackEvent": PlaybackEventSchema, "Notification": NotificationSchema,
                    "EventBridgeEnvelope": EventBridgeSchema}
_ONE_DELIVERY = {"anyOf": [{"$ref": f"#/components/schemas/{name}"} for name in DELIVERY_SCHEMAS]}


@bp.route("/webhooks/genesys", methods=["POST"])
@bp.doc(security=[{"genesysBasic": []}], requestBody={
    "required": True,
    "description": "a notification envelope, a bare playback event, an EventBridge envelope, "
                   f"or a JSON array of up to {MAX_BATCH} of them",
    "content": {"application/json": {"schema": {"anyOf": [
        *_ONE_DELIVERY["anyOf"], {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": _ONE_DELIVERY},
    ]}}},
})
# Documented, not marshalled: the answer is two integers, written directly on the hot path.
@bp.alt_response(200, schema=IngestResultSchema, success=True, description="OK")
@bp.alt_response(400, description="Not JSON, or an event that does not match the contract")
@bp.alt_response(401, description="Missing or wrong credentials")
@bp.alt_response(413, description="Body over 1 MiB or batch over 500 events")
@bp.alt_response(415, description="Content-Type is not application/json")
def receive_genesys_webhook():
    """Record playback events in the ledger, once each however often they are delivered."""
    _check_credentials()
    if not request.is_json:
        abort(415, message="Content-Type must be application/json")
    try:
        received = read_deliveries(request.get_data(cache=False))
    except BatchTooLarge as error:
        abort(413, message=error.message)
    except PayloadError as error:
        abort(400, message=error.message, errors=error.errors)
    except NotJson as error:
        abort(400, message=str(error))
    result = services().webhook_ingest.record(received)
    count_webhook_events(accepted=result.accepted, duplicates=result.duplicates)
    return current_app.response_class(answer_body(result), mimetype="application/json")


class NotJson(ValueError):
    """A body that does not parse as JSON."""


def read_deliveries(raw: bytes) -> list[ReceivedEvent]:
    """Every event in a raw body: NotJson if it does not parse, PayloadError if it breaks the contract."""
    try:
        data = json.loads(raw)
    except ValueError as error:  # UnicodeDecodeError included
        raise NotJson(f"Body is not valid JSON: {error}") from error
    if b"\\u0000" in raw:  # the cheap test first: JSON can only carry a NUL escaped
        refuse_nul(data)
    return parse_deliveries(data)


def answer_body(result: IngestResult) -> bytes:
    """The 200 answer, written directly: two integers need no serialiser on the hot path."""
    return f'{{"accepted":{result.accepted},"duplicates":{result.duplicates}}}\n'.encode()


def _check_credentials() -> None:
    settings = services().settings
    auth = request.authorization
    username = auth.username if auth and auth.type == "basic" else ""
    password = auth.password if auth and auth.type == "basic" else ""
    # Both compared, always, in constant time: no timing hint about which one was wrong.
    user_ok = hmac.compare_digest((username or "").encode(), settings.webhook_username.encode())
    password_ok = hmac.compare_digest((password or "").encode(), settings.webhook_password.encode())
    if not (user_ok and password_ok):
        abort(401, message="Missing or wrong webhook credentials",
              headers={"WWW-Authenticate": 'Basic realm="billing-sync webhooks", charset="UTF-8"'})

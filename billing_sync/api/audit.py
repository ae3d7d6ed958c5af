"""GET /api/v1/audit/export.csv and /api/v1/audit/verify: finance takes and proves the record."""

from __future__ import annotations

from flask import Response, g
from marshmallow import Schema, fields, validate

from .. import services
from ..audit import datasets, exports, verify_chain
from ..validation import Instant
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .pagination import check_window

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Audit trail exports and proof")


class ExportArgs(Schema):
    dataset = fields.String(required=True, validate=validate.OneOf(datasets.names()))
    since = Instant(required=True, metadata={"description": "inclusive, ISO 8601 with offset"})
    until = Instant(required=True, metadata={"description": "exclusive, ISO 8601 with offset"})


class ChainReportSchema(Schema):
    ok = fields.Boolean(required=True)
    verified = fields.Integer(required=True, metadata={"description": "entries checked before any break"})
    head = fields.String(required=True, metadata={"description": "hash of the last verified entry"})
    broken_id = fields.Integer(allow_none=True)
    expected = fields.String(allow_none=True)
    found = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


@bp.route("/export.csv")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(ExportArgs, location="query")
@bp.response(200, {"type": "string"}, description="RFC 4180 CSV, UTF-8, streamed", content_type="text/csv")
def export_csv(args):
    """One dataset for [since, until) as CSV, streamed row batch by row batch; recorded in the audit log."""
    check_window(args["since"], args["until"])
    window = datasets.Window(args["since"], args["until"])
    dataset = datasets.get(args["dataset"])
    body = exports.stream_csv(services().db, dataset, window, actor=g.caller.actor)
    name = f"{dataset.name}_{exports.iso(window.since)}_{exports.iso(window.until)}.csv".replace(":", "")
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # let a proxy pass chunks on as they come
    })


@bp.route("/verify")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.response(200, ChainReportSchema, description="ok false (still 200) when a link is broken")
def verify():
    """Walk the whole audit chain: the first broken link (id, expected, found) or the verified count and head."""
    with services().db.read() as session:
        return verify_chain(session).as_dict()

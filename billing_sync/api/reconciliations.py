"""POST /api/v1/reconciliations, GET /{id} and /{id}/discrepancies; GET /api/v1/reports/completion."""

from __future__ import annotations

from flask import g
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from .. import services
from ..config import ConfigError
from ..genesys.errors import GenesysError
from ..ledger.rating import Tariff
from ..models import DISCREPANCY_KINDS, DISCREPANCY_STATUSES
from ..reconcile import Rules, reconcile
from ..reconcile.bounds import WindowError, check_window
from ..reconcile.queries import list_discrepancies, run_json
from ..reconcile.report import GRANULARITIES, ReportError, buckets, completion_report
from ..validation import Instant
from .auth import BEARER_DOC, require_role
from .blueprint import Blueprint
from .pagination import PageArgs, decode_cursor, page_answer, page_schema

bp = Blueprint("reconciliations", __name__, url_prefix="/api/v1", description="Reconciliation and reports")


class RunArgs(Schema):
    since = Instant(required=True, metadata={"description": "window start (ISO 8601 with offset)"})
    until = Instant(required=True, metadata={"description": "window end, exclusive"})
    grace_s = fields.Integer(validate=validate.Range(min=0, max=30 * 86400),
                             metadata={"description": "seconds after its end before a missing webhook counts"})


class RunSchema(Schema):
    id = fields.Integer(required=True)
    since = fields.DateTime(required=True)
    until = fields.DateTime(required=True)
    as_of = fields.DateTime(required=True)
    grace_s = fields.Integer(required=True)
    analytics_lag_s = fields.Integer(required=True)
    tolerance_ms = fields.Integer(required=True)
    tolerance_percent = fields.Float(required=True)
    heal_missing_webhook = fields.Boolean(required=True)
    heal_duration = fields.Boolean(required=True)
    requested_by = fields.String(required=True)
    analytics_conversations = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Integer()),
                         required=True, metadata={"description": "{kind: {status: n}}"})
    healed = fields.Integer(required=True)
    open = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    info = fields.Integer(required=True)


class DiscrepancyArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(DISCREPANCY_KINDS))
    status = fields.String(validate=validate.OneOf(DISCREPANCY_STATUSES))
    playback_id = fields.String(validate=validate.Length(min=1, max=64))
    conversation_id = fields.String(validate=validate.Length(min=1, max=64))


class DiscrepancySchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True)
    conversation_id = fields.String(required=True)
    playback_id = fields.String(allow_none=True)
    webhook_state = fields.String(allow_none=True)
    stream_state = fields.String(allow_none=True)
    webhook_ms = fields.Integer(allow_none=True)
    stream_ms = fields.Integer(allow_none=True)
    ledger_count = fields.Integer(allow_none=True)
    analytics_count = fields.Integer(allow_none=True)
    ledger_ms = fields.Integer(allow_none=True)
    analytics_ms = fields.Integer(allow_none=True)
    corroborated = fields.Boolean(allow_none=True)
    record_id = fields.Integer(allow_none=True, metadata={"description": "the billing record that heals it"})


DiscrepancyPageSchema = page_schema("DiscrepancyPage", DiscrepancySchema)


class CompletionArgs(Schema):
    since = Instant(required=True)
    until = Instant(required=True)
    granularity = fields.String(load_default="hour", validate=validate.OneOf(sorted(GRANULARITIES)))


class CompletionRowSchema(Schema):
    interval = fields.String(required=True, metadata={"description": "the UTC hour or day, or `total`"})
    since = fields.String(required=True)
    until = fields.String(required=True)
    ledger_playbacks = fields.Integer(required=True)
    ledger_completed = fields.Integer(required=True)
    ledger_completion_rate = fields.Float(required=True, allow_none=True)
    analytics_playbacks = fields.Integer(required=True)
    analytics_completed = fields.Integer(required=True)
    analytics_completion_rate = fields.Float(required=True, allow_none=True)


class CompletionSchema(Schema):
    granularity = fields.String(required=True)
    items = fields.List(fields.Nested(CompletionRowSchema), required=True,
                        metadata={"description": "one row per interval, the total last"})


def _window(args) -> None:
    try:
        check_window(args["since"], args["until"])
    except WindowError as error:
        abort(400, message=f"Invalid json: since: {error}", errors={"json": {"since": [str(error)]}})


def _analytics():
    try:
        return services().genesys()
    except ConfigError as error:
        abort(503, message=f"Genesys Cloud is not configured: {error}")


@bp.route("/reconciliations", methods=["POST"])
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(RunArgs)
@bp.response(201, RunSchema)
@bp.alt_response(502, description="Genesys Cloud analytics failed")
@bp.alt_response(503, description="Genesys Cloud is not configured")
def create_run(args):
    """Reconcile a window now: fetch analytics, compare, heal; answers the finished run."""
    _window(args)
    app = services()
    rules = Rules.from_settings(app.settings, grace_s=args.get("grace_s"))
    try:
        result = reconcile(app.db, _analytics(), Tariff.from_settings(app.settings), since=args["since"],
                           until=args["until"], rules=rules, actor=g.caller.actor)
    except GenesysError as error:
        abort(502, message=f"Genesys Cloud analytics failed: {error}")
    with app.db.read() as session:
        return run_json(session, result.run_id)


@bp.route("/reconciliations/<id:run_id>")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.response(200, RunSchema)
@bp.alt_response(404, description="No such run")
def get_run(run_id: int):
    """A run: its window and rules, counts by kind and status, healed and open totals."""
    with services().db.read() as session:
        found = run_json(session, run_id)
    if found is None:
        abort(404, message=f"No reconciliation run {run_id}")
    return found


@bp.route("/reconciliations/<id:run_id>/discrepancies")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(DiscrepancyArgs, location="query")
@bp.response(200, DiscrepancyPageSchema)
@bp.alt_response(404, description="No such run")
def get_discrepancies(args, run_id: int):
    """A run's discrepancies, filtered by kind, status, playback or conversation; paged."""
    with services().db.read() as session:
        if run_json(session, run_id) is None:
            abort(404, message=f"No reconciliation run {run_id}")
        page = list_discrepancies(session, run_id, after_id=decode_cursor(args.get("cursor")), limit=args["limit"],
                                  **{k: args.get(k) for k in ("kind", "status", "playback_id", "conversation_id")})
    return page_answer(page.items, page.last_id, page.more)


@bp.route("/reports/completion")
@bp.doc(**BEARER_DOC)
@require_role("finance")
@bp.arguments(CompletionArgs, location="query")
@bp.response(200, CompletionSchema)
@bp.alt_response(502, description="Genesys Cloud analytics failed")
@bp.alt_response(503, description="Genesys Cloud is not configured")
def completion(args):
    """Completion rates per hour or day, the ledger's and analytics' side by side, totals last."""
    since, until, granularity = args["since"], args["until"], args["granularity"]
    try:
        buckets(since, until, granularity)
    except ReportError as error:
        abort(400, message=f"Invalid query: since: {error}", errors={"query": {"since": [str(error)]}})
    try:
        metrics = _analytics().conversation_playback_metrics(since, until)
    except GenesysError as error:
        abort(502, message=f"Genesys Cloud analytics failed: {error}")
    with services().db.read() as session:
        items = completion_report(session, metrics, since, until, granularity)
    return {"granularity": granularity, "items": items}

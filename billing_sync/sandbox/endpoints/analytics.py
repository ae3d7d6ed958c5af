"""POST /api/v2/analytics/conversations/details/query (contract §9)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..analytics import parse_query, run_query
from .guard import json_body, platform, requires

bp = Blueprint("sandbox_analytics", __name__, url_prefix="/api/v2/analytics")


@bp.post("/conversations/details/query")
@requires("analytics:query")
def details_query() -> Response:
    sandbox = platform()
    query = parse_query(json_body())
    return jsonify(run_query(sandbox.org, query, sandbox.clock.now(),
                             sandbox.faults.current().analytics_lag_s))

"""GET /metrics: Prometheus text format, for the scraper; like /healthz, no credentials (see README)."""

from __future__ import annotations

from flask import Response

from .. import services
from ..metrics import exposition
from .blueprint import Blueprint

bp = Blueprint("metrics", __name__, description="Prometheus metrics")


@bp.route("/metrics")
@bp.doc(responses={"200": {"description": "Prometheus text exposition format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics():
    """Every worker's request and ingest metrics, and the outbox, deliveries, stream and reconciliation from the database."""
    return Response(exposition.render(services().db), content_type=exposition.CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})

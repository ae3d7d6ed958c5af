"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import text

from .. import schema, services

bp = Blueprint("health", __name__, description="Liveness and readiness")


@bp.route("/healthz")
@bp.response(200)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.route("/readyz")
@bp.response(200)
@bp.alt_response(503, description="Database unreachable or migrations not at head")
def readyz():
    """The database answers and its schema is at the migrations' head."""
    db = services().db
    head = schema.head_revision()
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        current = schema.current_revision(db.engine)
    except Exception as error:  # any failure to reach the database means not ready
        return {"status": "unavailable", "database": type(error).__name__, "migrations": None}, 503
    if current != head:
        return {"status": "unavailable", "database": "ok", "migrations": {"current": current, "head": head}}, 503
    return {"status": "ready", "database": "ok", "migrations": {"current": current, "head": head}}

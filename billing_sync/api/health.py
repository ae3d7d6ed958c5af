"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from marshmallow import Schema, fields
from sqlalchemy import text

from .. import schema, services
from .blueprint import Blueprint

bp = Blueprint("health", __name__, description="Liveness and readiness")


class LivenessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ok`"})


class MigrationsSchema(Schema):
    current = fields.String(required=True, allow_none=True, metadata={"description": "null before the first"})
    head = fields.String(required=True)


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ready` or `unavailable`"})
    database = fields.String(required=True, metadata={"description": "`ok`, or the error that reaching it raised"})
    migrations = fields.Nested(MigrationsSchema, required=True, allow_none=True)


@bp.route("/healthz")
@bp.response(200, LivenessSchema)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.route("/readyz")
@bp.response(200, ReadinessSchema)
@bp.alt_response(503, schema=ReadinessSchema, description="Database unreachable or migrations not at head")
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

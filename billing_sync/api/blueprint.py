"""flask-smorest's Blueprint: schema errors answer 400, and every error a route can answer is documented.

Documented with the one error body, `{code, status, message, errors}`, whatever the status:
what the view declares with `alt_response`, and what follows from the route itself (a path
parameter that names nothing: 404; a JSON body: 413 over the size limit; a role: 401 without
a valid key, 403 with one below it).
"""

from __future__ import annotations

import flask_smorest
from marshmallow import Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser

from ..models import ROLES
from ..validation import find_nul

LOWEST_ROLE = ROLES[0]


class ErrorSchema(Schema):
    """The error body of every 4xx and 5xx."""

    code = fields.Integer(required=True, metadata={"description": "the HTTP status code"})
    status = fields.String(required=True, metadata={"description": "the HTTP status phrase"})
    message = fields.String(required=True, metadata={"description": "what was wrong, naming the field"})
    errors = fields.Dict(required=True, metadata={"description": "{location: {field: [messages]}}; {} when none"})


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def pre_load(self, location_data, *, schema, req, location):
        """Refuse a NUL character in any argument: PostgreSQL text cannot hold one (a 500 otherwise)."""
        path = find_nul(location_data)
        if path is not None:
            raise ValidationError({path: ["must not contain NUL characters"]})
        return location_data


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _Parser()

    def route(self, rule, *, parameters=None, tags=None, **options):
        register = super().route(rule, parameters=parameters, tags=tags, **options)

        def decorator(view):
            documented = view
            for status, description in _implied_errors(rule, view):
                documented = self.alt_response(status, description=description)(documented)
            return register(documented)

        return decorator

    def alt_response(self, status_code, response=None, *, schema=None, **kwargs):
        """flask-smorest's, with the error body for a 4xx or 5xx that names no schema."""
        if response is None and schema is None and int(status_code) >= 400:
            schema = ErrorSchema
        return super().alt_response(status_code, response, schema=schema, **kwargs)

    def arguments(self, schema, *, location="json", **kwargs):
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse
        too_large = self.alt_response(413, description="Body over the size limit (1 MiB)")
        return lambda view: too_large(parse(view))


def _implied_errors(rule: str, view) -> list[tuple[int, str]]:
    """The errors a route answers whatever its view does; the view's own descriptions win."""
    implied = []
    if "<" in rule:
        implied.append((404, "No such resource: the path names nothing"))
    role = getattr(view, "required_role", None)
    if role is not None:
        implied.append((401, "Missing, unknown or revoked API key"))
        if role != LOWEST_ROLE:
            implied.append((403, f"The API key's role is below {role}"))
    return implied

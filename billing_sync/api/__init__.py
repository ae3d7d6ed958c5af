"""HTTP: thin views over the domain, documented by flask-smorest at /openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, IntegerConverter

from ..validation import first_error
from . import (
    audit, billing, health, metrics, playback_control, playbacks, reconciliations, stream_status, switch_rules, webhooks,
)
from .blueprint import ErrorSchema

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key from `billing-sync keys create`"},
    "genesysBasic": {"type": "http", "scheme": "basic", "description": "the webhook credentials registered with Genesys Cloud"},
}


class ServiceApi(Api):
    """flask-smorest's Api with one error body everywhere: {code, status, message, errors}.

    No catch-all `default` response: each operation documents the statuses it answers.
    """

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("errors", {})
        if "message" not in payload:
            payload["message"] = _describe(payload["errors"]) or error.description
        headers = dict(headers or {})
        if getattr(error, "valid_methods", None):
            headers.setdefault("Allow", ", ".join(error.valid_methods))
        return payload, code, headers


class RowId(IntegerConverter):
    """`<id:name>`: a row id, 1 to 18 digits (`id(digits=9)` for an INTEGER column).

    Anything longer matches no route: a 404 like any id that names nothing, never a number
    the database refuses (PostgreSQL: integer out of range; SQLite: over 64 bits). The bound
    is in the pattern, not a range check after it: werkzeug checks the method before the
    converter, so a failed range check would make a sibling route's 405.
    """

    def __init__(self, url_map, digits: int = 18) -> None:
        super().__init__(url_map, min=1, max=10 ** digits - 1)
        self.regex = rf"[1-9]\d{{0,{digits - 1}}}"


class TextId(BaseConverter):
    """`<text_id:name>`: an id made of text, 1 to 64 characters, no '/' or NUL; anything else names nothing."""

    regex = r"[^/\x00]{1,64}"

    @staticmethod
    def openapi(converter) -> dict:
        return {"type": "string", "minLength": 1, "maxLength": 64, "pattern": f"^{converter.regex}$"}


def _describe(errors: dict) -> str | None:
    """'Invalid query: limit: Must be ...' for webargs' {location: {field: [messages]}}."""
    if not errors:
        return None
    path, message = first_error(errors)
    location, _, field = path.partition(".")
    return f"Invalid {location}: {field or '(value)'}: {message}"


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="billing-sync",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"components": {"securitySchemes": SECURITY_SCHEMES}},
    )
    app.url_map.converters.update(id=RowId, text_id=TextId)
    api = ServiceApi(app)
    api.register_converter(TextId, TextId.openapi)
    for name, schema in webhooks.DELIVERY_SCHEMAS.items():
        api.spec.components.schema(name, schema=schema)
    for blueprint in (health.bp, metrics.bp, webhooks.bp, playbacks.bp, billing.bp, playback_control.bp, switch_rules.bp,
                      stream_status.bp, audit.bp, reconciliations.bp):
        api.register_blueprint(blueprint)

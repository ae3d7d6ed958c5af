"""HTTP: thin views over the domain, documented by flask-smorest at /openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from ..validation import first_error
from . import (
    audit, billing, health, metrics, playback_control, playbacks, reconciliations, stream_status, switch_rules, webhooks,
)

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key from `billing-sync keys create`"},
    "genesysBasic": {"type": "http", "scheme": "basic", "description": "the webhook credentials registered with Genesys Cloud"},
}


class ServiceApi(Api):
    """flask-smorest's Api with one error body everywhere: {code, status, message, errors}."""

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("errors", {})
        if "message" not in payload:
            payload["message"] = _describe(payload["errors"]) or error.description
        headers = dict(headers or {})
        if getattr(error, "valid_methods", None):
            headers.setdefault("Allow", ", ".join(error.valid_methods))
        return payload, code, headers


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
    api = ServiceApi(app)
    for blueprint in (health.bp, metrics.bp, webhooks.bp, playbacks.bp, billing.bp, playback_control.bp, switch_rules.bp,
                      stream_status.bp, audit.bp, reconciliations.bp):
        api.register_blueprint(blueprint)

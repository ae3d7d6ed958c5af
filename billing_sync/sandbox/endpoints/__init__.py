"""The sandbox's Flask app: Genesys-shaped API blueprints plus the /sandbox/ control API."""

from __future__ import annotations

from flask import Flask

from ..platform import Platform
from . import analytics, control, conversations, guard, notifications, oauth, webhooks


def create_app(platform: Platform) -> Flask:
    """A Flask app serving the whole contract from one platform."""
    app = Flask("billing_sync.sandbox")
    app.extensions["sandbox"] = platform
    app.json.sort_keys = False  # type: ignore[attr-defined]
    guard.init_app(app)
    for module in (oauth, conversations, webhooks, notifications, analytics, control):
        app.register_blueprint(module.bp)
    return app

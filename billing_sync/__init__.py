"""billing-sync: exact, auditable billing of media playback on Genesys Cloud voice calls."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .config import Settings
from .db import Database
from .ledger.group_commit import GroupCommit
from .ledger.rating import Tariff

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Services:
    """What every part of the app reaches through `current_app`: settings, database, ingest."""

    settings: Settings
    db: Database
    webhook_ingest: GroupCommit


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: settings, database, API, request logging."""
    from . import api, logs, requests

    settings = settings or Settings.from_env()
    logs.configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    db = Database.from_url(settings.database_url)
    tariff = Tariff.from_settings(settings)
    app.extensions["billing_sync"] = Services(
        settings=settings, db=db, webhook_ingest=GroupCommit(db, source="webhook", tariff=tariff)
    )
    requests.init_app(app)
    api.init_app(app)
    return app


def services() -> Services:
    return current_app.extensions["billing_sync"]

"""billing-sync: exact, auditable billing of media playback on Genesys Cloud voice calls."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .config import Settings
from .db import Database
from .genesys.client import GenesysClient
from .genesys.provider import ClientProvider
from .ledger.group_commit import GroupCommit
from .ledger.rating import Tariff
from .playback.control import PlaybackControl
from .playback.media import MediaPolicy

MAX_BODY_BYTES = 1024 * 1024
# A web request must not wait out Genesys Cloud's rate limit: one retry, then 503 + Retry-After.
API_GENESYS_OPTIONS = {"max_tries": 2, "max_retry_after_s": 5.0, "timeout_s": 10.0}


@dataclass(frozen=True)
class Services:
    """What every part of the app reaches through `current_app`: settings, database, ingest, control."""

    settings: Settings
    db: Database
    webhook_ingest: GroupCommit
    genesys: ClientProvider
    control: PlaybackControl


def create_app(settings: Settings | None = None, *, genesys_client: GenesysClient | None = None,
               web: bool = True) -> Flask:
    """Build the Flask app: settings, database, API, request logging.

    The Genesys client is built on first use, per process; `genesys_client` replaces it
    (tests point one at the sandbox with a recording transport). `web=False` leaves out the
    HTTP side (API blueprints, OpenAPI, request hooks, the webhook's fast path): what `billing-sync` commands run in,
    which then start without building the OpenAPI document.
    """
    from . import logs

    settings = settings or Settings.from_env()
    logs.configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    db = Database.from_url(settings.database_url)
    tariff = Tariff.from_settings(settings)
    genesys = ClientProvider(settings, client=genesys_client, **API_GENESYS_OPTIONS)
    app.extensions["billing_sync"] = Services(
        settings=settings, db=db, webhook_ingest=GroupCommit(db, source="webhook", tariff=tariff),
        genesys=genesys, control=PlaybackControl(db, genesys, MediaPolicy.from_settings(settings)),
    )
    if web:
        from . import api, requests
        from .api.webhook_wsgi import WebhookFastPath

        requests.init_app(app)
        api.init_app(app)
        # Last: it needs the services above, and hands what it does not answer to all of Flask.
        app.wsgi_app = WebhookFastPath(app)
    return app


def services() -> Services:
    return current_app.extensions["billing_sync"]

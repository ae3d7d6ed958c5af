"""billing-sync: exact, auditable billing of media playback on Genesys Cloud voice calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .config import Settings
from .db import Database

if TYPE_CHECKING:  # imported when first built: a command such as `export` never loads them
    from .genesys.client import GenesysClient
    from .genesys.provider import ClientProvider
    from .ledger.group_commit import GroupCommit
    from .playback.control import PlaybackControl

MAX_BODY_BYTES = 1024 * 1024
# A web request must not wait out Genesys Cloud's rate limit: one retry, then 503 + Retry-After.
API_GENESYS_OPTIONS = {"max_tries": 2, "max_retry_after_s": 5.0, "timeout_s": 10.0}


class _Parts:
    """Ingest, the Genesys client provider and playback control, built once, on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: tuple[GroupCommit, ClientProvider, PlaybackControl] | None = None

    def of(self, services: Services) -> tuple[GroupCommit, ClientProvider, PlaybackControl]:
        with self._lock:
            if self._built is None:
                from .genesys.provider import ClientProvider
                from .ledger.group_commit import GroupCommit
                from .ledger.rating import Tariff
                from .playback.control import PlaybackControl
                from .playback.media import MediaPolicy

                settings, db = services.settings, services.db
                genesys = ClientProvider(settings, client=services.genesys_client, **API_GENESYS_OPTIONS)
                self._built = (GroupCommit(db, source="webhook", tariff=Tariff.from_settings(settings)), genesys,
                               PlaybackControl(db, genesys, MediaPolicy.from_settings(settings)))
            return self._built


@dataclass(frozen=True)
class Services:
    """What every part of the app reaches through `current_app`: settings, database, ingest, control.

    Settings and database are made with the app. Ingest, the Genesys client provider and
    playback control are built once, on first use (the web app builds them at once): a
    command that needs none of them, such as `billing-sync export`, then never imports the
    Genesys client, httpx or the ingest path, a quarter of a second of start-up.
    """

    settings: Settings
    db: Database
    # Replaces the client the provider would build (tests: the sandbox with a recording transport).
    genesys_client: GenesysClient | None = None
    _parts: _Parts = field(default_factory=_Parts, repr=False, compare=False)

    @property
    def webhook_ingest(self) -> GroupCommit:
        return self._parts.of(self)[0]

    @property
    def genesys(self) -> ClientProvider:
        return self._parts.of(self)[1]

    @property
    def control(self) -> PlaybackControl:
        return self._parts.of(self)[2]


def create_app(settings: Settings | None = None, *, genesys_client: GenesysClient | None = None,
               web: bool = True) -> Flask:
    """Build the Flask app: settings, database, API, request logging.

    The Genesys client is built on first use, per process; `genesys_client` replaces it
    (tests point one at the sandbox with a recording transport). `web=False` leaves out the
    HTTP side (API blueprints, OpenAPI, request hooks, the webhook's fast path): what
    `billing-sync` commands run in, which then start without building the OpenAPI document,
    and build ingest and playback control only if they use them.
    """
    from . import logs

    settings = settings or Settings.from_env()
    logs.configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app_services = Services(settings, Database.from_url(settings.database_url), genesys_client=genesys_client)
    app.extensions["billing_sync"] = app_services
    if web:
        from . import api, requests
        from .api.webhook_wsgi import WebhookFastPath

        app_services.control  # noqa: B018 - built now, before gunicorn forks its workers, as always
        requests.init_app(app)
        api.init_app(app)
        # Last: it needs the services above, and hands what it does not answer to all of Flask.
        app.wsgi_app = WebhookFastPath(app)
    return app


def services() -> Services:
    return current_app.extensions["billing_sync"]

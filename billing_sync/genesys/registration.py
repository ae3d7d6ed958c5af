"""Register the playback webhook at this service's public URL, and audit the registration."""

from __future__ import annotations

from dataclasses import dataclass

from .. import audit
from ..config import Settings
from ..db import Database
from .client import GenesysClient

WEBHOOK_NAME = "PlaybackBillingSync"
WEBHOOK_PATH = "/webhooks/genesys"


@dataclass(frozen=True, slots=True)
class Registered:
    webhook_id: str
    name: str
    address: str
    created: bool


def register_playback_webhook(settings: Settings, db: Database, *, name: str = WEBHOOK_NAME,
                              actor: str = "cli") -> Registered:
    """Make the org deliver playback events to BILLING_SYNC_PUBLIC_URL/webhooks/genesys (idempotent).

    Raises ConfigError when a setting is missing, GenesysError or ValueError when Genesys
    refuses, and SQLAlchemyError when the registration cannot be audited.
    """
    settings.require("public_url", "genesys_client_id", "genesys_client_secret")
    address = settings.public_url + WEBHOOK_PATH
    with GenesysClient.from_settings(settings) as client:
        registration = client.register_webhook(name, address, settings.webhook_username, settings.webhook_password)
    registered = Registered(registration.webhook.id, name, address, registration.created)
    with db.write() as session:
        audit.append(session, actor=actor, action="webhook.registered", subject=f"webhook:{registered.webhook_id}",
                     details={"name": name, "address": address, "created": registered.created})
    return registered

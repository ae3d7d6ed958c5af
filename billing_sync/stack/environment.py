"""Which mode `billing-sync run` is in, and the environment it gives its children.

Sandbox mode when none of GENESYS_ENVIRONMENT, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET,
GENESYS_PLAYBACK_BASE_URL is set (in the environment or .env): `run` starts the sandbox
org and points the service at it. Otherwise production mode: no sandbox, every Genesys
and billing setting comes from the operator.
"""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from ..config import ConfigError, Settings

GENESYS_VARIABLES = ("GENESYS_ENVIRONMENT", "GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "GENESYS_PLAYBACK_BASE_URL")
DEMO_MEDIA_HOST = "media.example.com"
SANDBOX_CLIENT_ID = "billing-sync-run"
# What production mode needs beyond what every command needs.
PRODUCTION_SETTINGS = ("genesys_client_id", "genesys_client_secret", "public_url", "billing_webhook_url",
                       "billing_webhook_secret")


def configured_values(environ: Mapping[str, str], env_file: str | Path = ".env") -> dict[str, str]:
    """The variables the service will see: `.env` (if any) under the environment, as Settings reads them."""
    values: dict[str, str] = {}
    if Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(environ)
    return values


def uses_sandbox(values: Mapping[str, str]) -> bool:
    """True when no GENESYS_* variable is set: the sandbox stands in for Genesys Cloud."""
    return not any(values.get(name, "").strip() for name in GENESYS_VARIABLES)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Addresses:
    """Where the service listens and how it is reached; the sandbox's URL in sandbox mode."""

    bind: str
    api_url: str
    sandbox_url: str | None


def addresses(bind: str | None, *, sandbox: bool, sandbox_port: int,
              values: Mapping[str, str] | None = None) -> Addresses:
    """Resolve `--bind` (default: BILLING_SYNC_BIND from `values`, else 127.0.0.1 on a free port) and
    the sandbox's port (0: a free one)."""
    bind = bind or (values or {}).get("BILLING_SYNC_BIND", "").strip() or "127.0.0.1:0"
    host, separator, port_text = bind.rpartition(":")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--bind must be HOST:PORT, got {bind!r}")
    port = int(port_text) or free_port(host)
    reach = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    sandbox_url = f"http://127.0.0.1:{sandbox_port or free_port()}" if sandbox else None
    return Addresses(bind=f"{host}:{port}", api_url=f"http://{reach}:{port}", sandbox_url=sandbox_url)


def sandbox_overrides(values: Mapping[str, str], where: Addresses) -> dict[str, str]:
    """The variables that point the service at the sandbox; the operator's own values win where they may.

    Genesys and the public URL always point at the local stack (the sandbox delivers webhooks
    there); the billing webhook defaults to the sandbox's sink and media to the demo's host.
    """
    overrides = {
        "GENESYS_ENVIRONMENT": where.sandbox_url,
        "GENESYS_CLIENT_ID": SANDBOX_CLIENT_ID,
        "GENESYS_CLIENT_SECRET": secrets.token_urlsafe(24),
        "BILLING_SYNC_PUBLIC_URL": where.api_url,
    }
    if not values.get("BILLING_WEBHOOK_URL", "").strip():
        overrides["BILLING_WEBHOOK_URL"] = f"{where.sandbox_url}/sandbox/billing"
    if not values.get("BILLING_WEBHOOK_SECRET", "").strip():
        overrides["BILLING_WEBHOOK_SECRET"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    if not values.get("MEDIA_ALLOWED_HOSTS", "").strip():
        overrides["MEDIA_ALLOWED_HOSTS"] = DEMO_MEDIA_HOST
    return overrides


def check_production(settings: Settings) -> None:
    """ConfigError naming the first setting production mode lacks."""
    settings.require(*PRODUCTION_SETTINGS)

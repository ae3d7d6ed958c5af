"""Settings, read once from the environment (and an optional `.env` file), validated.

Every variable is parsed here and nowhere else. A missing or malformed value raises
`ConfigError` with one line naming the variable; entry points print that line and exit.
There are no default secrets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite:///instance/billing_sync.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def _database_url(name: str, raw: str) -> str:
    url = raw.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not (url.startswith("sqlite://") or url.startswith("postgresql+psycopg://")):
        raise ConfigError(f"{name} must be a sqlite:/// or postgresql:// URL, got {raw!r}")
    return url


def _secret(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty")
    return raw


def _genesys_environment(name: str, raw: str) -> str:
    from .genesys.hosts import resolve_environment

    try:
        resolve_environment(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None
    return raw.strip()


def _http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return raw.strip().rstrip("/")


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _host_patterns(name: str, raw: str) -> tuple[str, ...]:
    from .playback.media import parse_host_pattern

    patterns = []
    for entry in raw.split(","):
        if not entry.strip():
            continue
        try:
            patterns.append(parse_host_pattern(entry))
        except ValueError as error:
            raise ConfigError(f"{name}: {error}") from None
    return tuple(dict.fromkeys(patterns))


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def _env(var: str, parse: Callable[[str, str], Any], *, required: bool = False, help: str = ""):
    return field(
        default=None,
        metadata={"var": var, "parse": parse, "required": required, "help": help},
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The service's configuration. Build it with `Settings.from_env()` or directly in tests."""

    database_url: str = field(
        default=DEFAULT_DATABASE_URL,
        metadata={"var": "DATABASE_URL", "parse": _database_url, "required": False,
                  "help": "SQLAlchemy URL of the ledger database"},
    )
    webhook_username: str = _env(
        "BILLING_SYNC_WEBHOOK_USERNAME", _secret, required=True,
        help="Basic-auth user name Genesys Cloud sends with each webhook",
    )
    webhook_password: str = _env(
        "BILLING_SYNC_WEBHOOK_PASSWORD", _secret, required=True,
        help="Basic-auth password Genesys Cloud sends with each webhook",
    )
    genesys_environment: str = field(
        default="mypurecloud.com",
        metadata={"var": "GENESYS_ENVIRONMENT", "parse": _genesys_environment, "required": False,
                  "help": "Genesys Cloud region host, region code or absolute URL (the sandbox's)"},
    )
    genesys_client_id: str | None = _env(
        "GENESYS_CLIENT_ID", _secret, help="OAuth client-credentials client id"
    )
    genesys_client_secret: str | None = _env(
        "GENESYS_CLIENT_SECRET", _secret, help="OAuth client-credentials client secret"
    )
    genesys_playback_base_url: str | None = _env(
        "GENESYS_PLAYBACK_BASE_URL", _http_url,
        help="base URL of the playback extension endpoints (default: the API base)",
    )
    public_url: str | None = _env(
        "BILLING_SYNC_PUBLIC_URL", _http_url,
        help="this service's URL as Genesys Cloud reaches it (webhook registration)",
    )
    media_allowed_hosts: tuple[str, ...] = field(
        default=(),
        metadata={"var": "MEDIA_ALLOWED_HOSTS", "parse": _host_patterns, "required": False,
                  "help": "comma-separated hosts media may be played from (`*.example.com` wildcards; "
                          "an IP literal or private host only when listed exactly); empty refuses all"},
    )
    media_allow_http: bool = field(
        default=False,
        metadata={"var": "MEDIA_ALLOW_HTTP", "parse": _boolean, "required": False,
                  "help": "accept plain http:// media URLs as well as https:// (true or false)"},
    )
    log_level: str = field(
        default="INFO",
        metadata={"var": "LOG_LEVEL", "parse": _log_level, "required": False,
                  "help": "DEBUG, INFO, WARNING or ERROR"},
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("required") and getattr(self, f.name) is None:
                raise ConfigError(f"{f.metadata['var']} is required: {f.metadata['help']}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from `environ` (default `os.environ`) over an optional `.env` file."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            var = f.metadata["var"]
            if var in values:
                kwargs[f.name] = f.metadata["parse"](var, values[var])
        return cls(**kwargs)

    def require(self, *names: str) -> None:
        """ConfigError naming the first of these fields that is not set (per-command needs)."""
        by_name = {f.name: f for f in fields(self)}
        for name in names:
            if getattr(self, name) is None:
                meta = by_name[name].metadata
                raise ConfigError(f"{meta['var']} is required here: {meta['help']}")

    @property
    def genesys_hosts(self):
        from .genesys.hosts import resolve_environment

        return resolve_environment(self.genesys_environment)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests, per-command overrides)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**(current | changes))


def variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: README's configuration table."""
    rows = []
    for f in fields(Settings):
        default = "required" if f.metadata.get("required") else repr(f.default)
        rows.append((f.metadata["var"], default, f.metadata["help"]))
    return rows

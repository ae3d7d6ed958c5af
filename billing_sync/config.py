"""Settings, read once from the environment (and an optional `.env` file), validated.

Every variable is parsed here and nowhere else. A missing or malformed value raises
`ConfigError` with one line naming the variable; entry points print that line and exit.
There are no default secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite:///instance/billing_sync.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; then the message is dead.
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
# ISO 4217 minor units that are not 2. Codes without minor units (XAU, XXX, ...) are refused.
CURRENCY_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                     "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
NO_MINOR_UNIT = frozenset(("XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU",
                           "XTS", "XUA", "XXX"))


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


def _webhook_secrets(name: str, raw: str) -> tuple[str, ...]:
    secrets = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not secrets:
        raise ConfigError(f"{name} is set but empty")
    for position, secret in enumerate(secrets, 1):
        if not secret.startswith("whsec_"):
            raise ConfigError(f"{name}: secret {position} must start with whsec_")
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{name}: secret {position} is not base64 after whsec_") from None
        if len(key) < 24:
            raise ConfigError(f"{name}: secret {position} is {len(key)} bytes; use 24 to 64 random bytes")
    return secrets


def _retry_schedule(name: str, raw: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, got {raw!r}") from None
    if not all(0 <= delay < 10**7 for delay in delays):
        raise ConfigError(f"{name}: every delay must be between 0 and 10000000 seconds, got {raw!r}")
    if delays[0] != 0:
        raise ConfigError(f"{name} must start with 0: the first attempt is immediate, got {raw!r}")
    return delays


def _rate(name: str, raw: str) -> Decimal:
    try:
        rate = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(f"{name} must be a decimal number such as 0.25, got {raw!r}") from None
    if not rate.is_finite() or rate < 0 or rate.as_tuple().exponent < -12:
        raise ConfigError(f"{name} must be a non-negative decimal with at most 12 places, got {raw!r}")
    return rate


def _currency(name: str, raw: str) -> str:
    code = raw.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha() or code in NO_MINOR_UNIT:
        raise ConfigError(f"{name} must be an ISO 4217 currency code such as EUR, got {raw!r}")
    return code


def currency_exponent(code: str) -> int:
    """Digits after the decimal point in `code`'s minor unit (JPY 0, EUR 2, KWD 3)."""
    return CURRENCY_EXPONENTS.get(code, 2)


def _positive_int(name: str, raw: str) -> int:
    return _int_at_least(name, raw, 1)


def _non_negative_int(name: str, raw: str) -> int:
    return _int_at_least(name, raw, 0)


def _int_at_least(name: str, raw: str, least: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < least:
        raise ConfigError(f"{name} must be at least {least}, got {raw!r}")
    return value


def _percent(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(f"{name} must be a percentage such as 2 or 0.5, got {raw!r}") from None
    if not value.is_finite() or not 0 <= value <= 100 or value.as_tuple().exponent < -2:
        raise ConfigError(f"{name} must be between 0 and 100 with at most 2 places, got {raw!r}")
    return value


def _env(var: str, parse: Callable[[str, str], Any], *, default: Any = None, required: bool = False,
         help: str = ""):
    """A setting read from `var`, parsed by `parse`, `default` when unset."""
    return field(default=default, metadata={"var": var, "parse": parse, "required": required, "help": help})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The service's configuration. Build it with `Settings.from_env()` or directly in tests."""

    database_url: str = _env(
        "DATABASE_URL", _database_url, default=DEFAULT_DATABASE_URL,
        help="SQLAlchemy URL of the ledger database",
    )
    webhook_username: str = _env(
        "BILLING_SYNC_WEBHOOK_USERNAME", _secret, required=True,
        help="Basic-auth user name Genesys Cloud sends with each webhook",
    )
    webhook_password: str = _env(
        "BILLING_SYNC_WEBHOOK_PASSWORD", _secret, required=True,
        help="Basic-auth password Genesys Cloud sends with each webhook",
    )
    genesys_environment: str = _env(
        "GENESYS_ENVIRONMENT", _genesys_environment, default="mypurecloud.com",
        help="Genesys Cloud region host, region code or absolute URL (the sandbox's)",
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
    media_allow_http: bool = _env(
        "MEDIA_ALLOW_HTTP", _boolean, default=False,
        help="accept plain http:// media URLs as well as https:// (true or false)",
    )
    log_level: str = _env(
        "LOG_LEVEL", _log_level, default="INFO",
        help="DEBUG, INFO, WARNING or ERROR",
    )
    billing_webhook_url: str | None = _env(
        "BILLING_WEBHOOK_URL", _http_url, help="where the dispatcher posts signed billing records",
    )
    billing_webhook_secret: tuple[str, ...] | None = _env(
        "BILLING_WEBHOOK_SECRET", _webhook_secrets,
        help="whsec_ secrets the dispatcher signs with, comma-separated during rotation",
    )
    billing_retry_schedule: tuple[float, ...] = _env(
        "BILLING_RETRY_SCHEDULE", _retry_schedule, default=DEFAULT_RETRY_SCHEDULE,
        help="seconds before each delivery attempt, comma-separated, starting with 0",
    )
    billing_rate_per_minute: Decimal = _env(
        "BILLING_RATE_PER_MINUTE", _rate, required=True,
        help="price of one minute of playback, a decimal string (0 records zero-amount charges)",
    )
    billing_currency: str = _env(
        "BILLING_CURRENCY", _currency, required=True, help="ISO 4217 code of the rate (EUR, JPY, KWD)",
    )
    billing_increment_seconds: int = _env(
        "BILLING_INCREMENT_SECONDS", _positive_int, default=1,
        help="billable time is rounded up to a multiple of this many seconds",
    )
    billing_minimum_seconds: int = _env(
        "BILLING_MINIMUM_SECONDS", _non_negative_int, default=0,
        help="least billable seconds of a playback that played at all",
    )

    reconcile_grace_s: int = _env(
        "RECONCILE_GRACE_S", _non_negative_int, default=600,
        help="seconds after a playback ends before a missing webhook counts as missing",
    )
    reconcile_analytics_lag_s: int = _env(
        "RECONCILE_ANALYTICS_LAG_S", _non_negative_int, default=900,
        help="seconds analytics may lag; younger conversations are pending, not wrong",
    )
    reconcile_tolerance_ms: int = _env(
        "RECONCILE_TOLERANCE_MS", _non_negative_int, default=1000,
        help="durations differing by no more than this many ms (or the percentage) agree",
    )
    reconcile_tolerance_percent: Decimal = _env(
        "RECONCILE_TOLERANCE_PERCENT", _percent, default=Decimal("2"),
        help="durations differing by no more than this % of the longer (or the ms) agree",
    )
    reconcile_heal_missing_webhook: bool = _env(
        "RECONCILE_HEAL_MISSING_WEBHOOK", _boolean, default=True,
        help="charge a playback the webhook never reported from its stream evidence",
    )
    reconcile_heal_duration: bool = _env(
        "RECONCILE_HEAL_DURATION", _boolean, default=True,
        help="adjust a webhook duration that both the stream and analytics contradict",
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

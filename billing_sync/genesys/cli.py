"""`billing-sync genesys …`: register the playback webhook, read playback analytics.

Every failure is one line (a ClickException): the Genesys error with its status, code and
contextId, or the missing setting. Never a traceback, never a secret.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from .. import services
from ..config import ConfigError, Settings
from .client import GenesysClient
from .errors import GenesysError
from .models import PlaybackMetrics
from .registration import WEBHOOK_NAME, register_playback_webhook


class Instant(click.ParamType):
    """An ISO 8601 date or date-time; without an offset it is UTC."""

    name = "ISO-8601"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 date or date-time", param, ctx)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.group("genesys")
def genesys_group() -> None:
    """Genesys Cloud: webhook registration and playback analytics."""


@genesys_group.command("register-webhook")
@click.option("--name", default=WEBHOOK_NAME, show_default=True, help="the webhook's name in the org")
@with_appcontext
def register_webhook(name: str) -> None:
    """Register (or update) the playback webhook at BILLING_SYNC_PUBLIC_URL/webhooks/genesys; prints its id."""
    app_services = services()
    try:
        registered = register_playback_webhook(app_services.settings, app_services.db, name=name, actor="cli")
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    except (GenesysError, ValueError) as error:
        raise click.ClickException(f"webhook registration failed: {error}") from None
    except SQLAlchemyError:
        raise click.ClickException(
            "the webhook is registered, but the audit log could not be written "
            "(has `billing-sync db upgrade` run?)"
        ) from None
    verb = "created" if registered.created else "updated"
    click.echo(f"{verb} webhook {name!r} delivering to {registered.address}", err=True)
    click.echo(registered.webhook_id)


@genesys_group.command("analytics")
@click.option("--since", required=True, type=Instant(), help="start, ISO 8601 (UTC unless an offset is given)")
@click.option("--until", required=True, type=Instant(), help="end (exclusive), ISO 8601")
@with_appcontext
def analytics(since: datetime, until: datetime) -> None:
    """Playbacks and completion rate per conversation from Genesys analytics, totals last."""
    if since >= until:
        raise click.BadParameter("must be after --since", param_hint="--until")
    with _client(services().settings) as client:
        try:
            metrics = client.conversation_playback_metrics(since, until)
        except GenesysError as error:
            raise click.ClickException(f"analytics query failed: {error}") from None
    for line in metrics_table(metrics):
        click.echo(line)


def metrics_table(metrics: PlaybackMetrics) -> list[str]:
    """The analytics table: one row per conversation with playbacks, then the totals."""
    rows = [("conversation", "started", "playbacks", "completed", "played_s", "completion")]
    for item in metrics.conversations:
        if not item.playbacks and not item.played_ms:
            continue
        started = item.started_at.strftime("%Y-%m-%d %H:%M:%S") if item.started_at else "-"
        rows.append((item.conversation_id, started, str(item.playbacks), str(item.completed),
                     f"{item.played_ms / 1000:.1f}", _rate(item.completion_rate)))
    rows.append(("TOTAL", f"{len(rows) - 1} conversations", str(metrics.playbacks), str(metrics.completed),
                 f"{metrics.played_ms / 1000:.1f}", _rate(metrics.completion_rate)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
            for row in rows]


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _require(settings: Settings, *names: str) -> None:
    try:
        settings.require(*names)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _client(settings: Settings) -> GenesysClient:
    _require(settings, "genesys_client_id", "genesys_client_secret")
    return GenesysClient.from_settings(settings)

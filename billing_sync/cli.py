"""The `billing-sync` command: operations that run in the app's context."""

from __future__ import annotations

import importlib
import signal
import threading
from datetime import UTC

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from . import create_app, schema, services
from .config import ConfigError
from .keys import create_key
from .models import ROLES


def _app_for_cli() -> Flask:
    try:
        return create_app(web=False)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _genesys_client(settings):
    """The Genesys client the settings describe; a missing or malformed one is one line."""
    from .genesys.client import GenesysClient

    try:
        return GenesysClient.from_settings(settings)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


# Commands kept in their own modules, imported only when they run (or help lists them):
# `billing-sync export` need not load the sandbox org.
_COMMANDS_ELSEWHERE = {
    "audit": ("billing_sync.audit.cli", "audit_group"),
    "export": ("billing_sync.audit.cli", "export_command"),
    "genesys": ("billing_sync.genesys.cli", "genesys_group"),
    "sandbox": ("billing_sync.sandbox.cli", "sandbox_command"),
    "run": ("billing_sync.stack.cli", "run_command"),
}


class _Group(FlaskGroup):
    """Flask's CLI group without Flask's own options: the app is always billing-sync's."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in ("env_file", "app", "debug")]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS_ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS_ELSEWHERE:
            module, name = _COMMANDS_ELSEWHERE[cmd_name]
            return getattr(importlib.import_module(module), name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group, create_app=_app_for_cli, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """billing-sync: exact, auditable billing of Genesys Cloud media playback."""


@main.group()
def db() -> None:
    """The ledger database's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations (idempotent)."""
    engine = services().db.engine
    schema.upgrade(engine, revision)
    click.echo(f"database at {schema.current_revision(engine)} (head {schema.head_revision()})")


@main.group()
def keys() -> None:
    """API keys for the /api/v1 endpoints."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default="", help="a label, e.g. who holds the key")
@with_appcontext
def keys_create(role: str, name: str) -> None:
    """Create a key; it is printed once, alone on the last line, and stored only hashed."""
    with services().db.write() as session:
        row, key = create_key(session, role=role, name=name or f"{role} key", actor="cli")
    click.echo(f"created api key {row.id} ({row.role}, {row.prefix}…); store it now, it is not shown again:", err=True)
    click.echo(key)


@main.command("dispatch")
@click.option("--once", is_flag=True, help="deliver what is due now, then exit")
@click.option("--replay-dead", is_flag=True, help="first put dead messages back in the queue (audited)")
@click.option("--since", type=click.DateTime(), default=None,
              help="with --replay-dead: only messages that died at or after this UTC time")
@click.option("--concurrency", type=click.IntRange(1, 512), default=16, show_default=True,
              help="requests in flight at once")
@click.option("--batch-size", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="messages claimed per batch")
@click.option("--lease-seconds", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="how long a claimed message stays this dispatcher's if it dies")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="seconds to wait for the billing system's answer")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="seconds between looks at an empty queue")
@with_appcontext
def dispatch(once: bool, replay_dead: bool, since, concurrency: int, batch_size: int, lease_seconds: float,
             timeout_s: float, poll_interval: float) -> None:
    """Deliver billing records to BILLING_WEBHOOK_URL until SIGTERM or SIGINT (then exit 0)."""
    from .billing.outbox import DispatcherBusy
    from .billing.outbox import replay_dead as requeue_dead
    from .workers.dispatcher import DispatchOptions, Dispatcher

    if since is not None and not replay_dead:
        raise click.UsageError("--since goes with --replay-dead")
    app_services = services()
    options = DispatchOptions(batch_size=batch_size, concurrency=concurrency, lease_s=lease_seconds,
                              timeout_s=timeout_s, idle_poll_s=poll_interval)
    try:
        dispatcher = Dispatcher.from_settings(app_services.db, app_services.settings, options=options)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    if replay_dead:
        with app_services.db.transaction() as connection:
            replayed = requeue_dead(connection, actor="cli",
                                    since=since.replace(tzinfo=UTC) if since is not None else None)
        click.echo(f"replayed {len(replayed)} dead message(s)", err=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = dispatcher.run(stop, once=once)
    except DispatcherBusy as error:
        raise click.ClickException(str(error)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"dispatch stopped: {stats.delivered} delivered, {stats.retry} to retry, {stats.dead} dead, "
               f"{stats.released} released", err=True)


@main.command("stream")
@click.option("--shard", default="0/1", show_default=True,
              help="i/N: this listener takes the conversations whose id hashes to i of N")
@click.option("--refresh-s", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="how often to re-read which conversations to watch")
@with_appcontext
def stream_command(shard: str, refresh_s: float) -> None:
    """Listen to the Genesys event stream: stream evidence, switching rules. Stops on SIGTERM/SIGINT."""
    from .genesys.errors import GenesysError
    from .playback.control import PlaybackControl
    from .playback.media import MediaPolicy
    from .playback.switching import Switcher
    from .workers.stream import Shard, StreamWorker, run_until_signalled

    try:
        parsed = Shard.parse(shard)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--shard") from None
    settings, db = services().settings, services().db
    genesys = _genesys_client(settings)
    with genesys:
        control = PlaybackControl(db, lambda: genesys, MediaPolicy.from_settings(settings))
        worker = StreamWorker(db, genesys, Switcher(db, control), shard=parsed, refresh_s=refresh_s)
        click.echo(f"stream listener {parsed} starting", err=True)
        try:
            run_until_signalled(worker)
        except GenesysError as error:
            raise click.ClickException(f"the event stream was refused: {error}") from None
    click.echo(f"stream listener {parsed} stopped", err=True)


@main.command("reconcile")
@click.option("--since", type=click.DateTime(), required=True, help="window start, UTC")
@click.option("--until", type=click.DateTime(), required=True, help="window end (exclusive), UTC")
@click.option("--grace-s", type=click.IntRange(min=0), default=None,
              help="seconds after a playback ends before a missing webhook counts [default: RECONCILE_GRACE_S]")
@with_appcontext
def reconcile_command(since, until, grace_s: int | None) -> None:
    """Compare the ledger with the stream and analytics over a window; heal what can be proved."""
    from .genesys.errors import GenesysError
    from .ledger.rating import Tariff
    from .reconcile import Rules, reconcile
    from .reconcile.bounds import WindowError, check_window

    since, until = since.replace(tzinfo=UTC), until.replace(tzinfo=UTC)
    try:
        check_window(since, until)
    except WindowError as error:
        raise click.UsageError(f"--since/--until: {error}") from None
    settings, db = services().settings, services().db
    genesys = _genesys_client(settings)
    with genesys:
        try:
            result = reconcile(db, genesys, Tariff.from_settings(settings), since=since, until=until,
                               rules=Rules.from_settings(settings, grace_s=grace_s), actor="cli")
        except GenesysError as error:
            raise click.ClickException(f"Genesys Cloud analytics failed: {error}") from None
    for kind, by_status in result.counts.items():
        click.echo(f"{kind}: " + ", ".join(f"{n} {status}" for status, n in by_status.items()))
    click.echo(f"reconciliation {result.run_id}: {result.charged} charged, {result.adjusted} adjusted")
    click.echo(f"took {sum(result.seconds.values()):.2f} s: "
               + ", ".join(f"{step} {seconds:.2f}" for step, seconds in result.seconds.items()))

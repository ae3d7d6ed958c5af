"""The `billing-sync` command: operations that run in the app's context."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from . import create_app, schema, services
from .audit import verify_chain
from .config import ConfigError
from .keys import create_key
from .models import ROLES


def _app_for_cli() -> Flask:
    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


class _Group(FlaskGroup):
    """Flask's CLI group without Flask's own options: the app is always billing-sync's."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in ("env_file", "app", "debug")]


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


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Walk the audit chain; exit 1 at the first broken link."""
    with services().db.read() as session:
        report = verify_chain(session)
    if report.ok:
        click.echo(f"audit chain verified: {report.verified} entries, head {report.head}")
        return
    click.echo(
        f"audit chain BROKEN at id {report.broken_id} ({report.reason}): "
        f"expected {report.expected}, found {report.found}; {report.verified} entries verified before it",
        err=True,
    )
    sys.exit(1)


@main.command("stream")
@click.option("--shard", default="0/1", show_default=True,
              help="i/N: this listener takes the conversations whose id hashes to i of N")
@click.option("--refresh-s", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="how often to re-read which conversations to watch")
@with_appcontext
def stream_command(shard: str, refresh_s: float) -> None:
    """Listen to the Genesys event stream: stream evidence, switching rules. Stops on SIGTERM/SIGINT."""
    from .genesys.client import GenesysClient
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
    try:
        genesys = GenesysClient.from_settings(settings)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    with genesys:
        control = PlaybackControl(db, lambda: genesys, MediaPolicy.from_settings(settings))
        worker = StreamWorker(db, genesys, Switcher(db, control), shard=parsed, refresh_s=refresh_s)
        click.echo(f"stream listener {parsed} starting", err=True)
        try:
            run_until_signalled(worker)
        except GenesysError as error:
            raise click.ClickException(f"the event stream was refused: {error}") from None
    click.echo(f"stream listener {parsed} stopped", err=True)


def _register_subcommands() -> None:
    from .genesys.cli import genesys_group
    from .sandbox.cli import sandbox_command

    main.add_command(genesys_group)
    main.add_command(sandbox_command, "sandbox")


_register_subcommands()

"""The `billing-sync` command: operations that run in the app's context."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from . import create_app, schema, services
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


def _register_subcommands() -> None:
    from .audit.cli import audit_group, export_command
    from .genesys.cli import genesys_group
    from .sandbox.cli import sandbox_command

    main.add_command(audit_group)
    main.add_command(export_command)
    main.add_command(genesys_group)
    main.add_command(sandbox_command, "sandbox")


_register_subcommands()

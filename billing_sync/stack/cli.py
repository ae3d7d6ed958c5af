"""The `billing-sync run` command."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import ConfigError
from .run import RunOptions, run_stack


@click.command("run")
@click.option("--demo/--no-demo", default=True, show_default=True,
              help="drive the demo traffic once the stack is up (sandbox mode only)")
@click.option("--bind", default=None, metavar="HOST:PORT",
              help="where gunicorn listens [default: BILLING_SYNC_BIND, else 127.0.0.1 on a free port]")
@click.option("--sandbox-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="the sandbox org's HTTP port (0 = a free one)")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="the sandbox's seed: its ids and random faults repeat with it (on a fresh database) "
                   "[default: a new one each run]")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="gunicorn worker processes [default: gunicorn.conf.py's]")
@click.option("--instance-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("instance"),
              show_default=True, help="where children's logs and demo exports go")
@click.option("--stop-timeout", "stop_timeout_s", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="seconds each child gets after SIGTERM before SIGKILL")
def run_command(demo: bool, bind: str | None, sandbox_port: int, seed: int | None, workers: int | None,
                instance_dir: Path, stop_timeout_s: float) -> None:
    """The whole stack in one command: web (gunicorn), dispatcher, stream listener; Ctrl-C stops it.

    \b
    Sandbox mode, when none of GENESYS_ENVIRONMENT, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET
    and GENESYS_PLAYBACK_BASE_URL is set (environment or .env): starts the sandbox org and
    points GENESYS_* and BILLING_SYNC_PUBLIC_URL at the local stack; BILLING_WEBHOOK_URL and
    BILLING_WEBHOOK_SECRET default to the sandbox's billing sink, MEDIA_ALLOWED_HOSTS to the
    demo's media host. Creates an admin and a finance key and prints them, then drives the demo
    (calls, playbacks through the API, a DTMF switch, faults, reconciliation, CSV export) and
    prints a summary read from the database.
    \b
    Production mode, when any GENESYS_* is set: no sandbox, no demo, no keys; GENESYS_CLIENT_ID,
    GENESYS_CLIENT_SECRET, BILLING_SYNC_PUBLIC_URL, BILLING_WEBHOOK_URL and BILLING_WEBHOOK_SECRET
    are required, DATABASE_URL is used as set.
    \b
    Both: migrate DATABASE_URL, register the webhook, start the children (logs in
    INSTANCE_DIR/logs), serve until SIGINT or SIGTERM, stop every child and exit 0.
    """
    options = RunOptions(demo=demo, bind=bind, sandbox_port=sandbox_port, seed=seed, workers=workers,
                         instance_dir=instance_dir, stop_timeout_s=stop_timeout_s)
    try:
        status = run_stack(options, say=click.echo)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    raise SystemExit(status)

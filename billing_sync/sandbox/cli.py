"""`billing-sync sandbox`: run the sandbox org until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import click

from .server import Sandbox
from .tokens import ALL_SCOPES, validate_scopes


def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise click.ClickException(f"{name} is not set: the sandbox's OAuth client needs it")
    return value


@click.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="HTTP port on 127.0.0.1 (0 = pick a free one)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed for every random choice")
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="sandbox seconds per real second")
@click.option("--scopes", default=",".join(ALL_SCOPES), show_default=True,
              help="comma-separated scopes granted to the OAuth client")
def sandbox_command(port: int, seed: int, time_scale: float, scopes: str) -> None:
    """Serve a local Genesys Cloud org (API, login, streaming, control API, billing sink).

    The OAuth client is GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET; the billing sink
    accepts signatures made with any secret in BILLING_WEBHOOK_SECRET (comma-separated).
    """
    client_id = _required_env("GENESYS_CLIENT_ID")
    client_secret = _required_env("GENESYS_CLIENT_SECRET")
    try:
        granted = validate_scopes([s.strip() for s in scopes.split(",") if s.strip()])
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scopes") from None
    secrets = [s for s in os.environ.get("BILLING_WEBHOOK_SECRET", "").split(",") if s.strip()]
    sandbox = Sandbox(client_id=client_id, client_secret=client_secret, seed=seed,
                      time_scale=time_scale, scopes=granted, billing_secrets=secrets)
    try:
        sandbox.start(port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(f"sandbox Genesys Cloud org on {sandbox.base_url} (API and login; "
                   f"GENESYS_ENVIRONMENT={sandbox.base_url})")
        click.echo(f"streaming on ws://127.0.0.1:{sandbox.stream_port}/channels/<channelId>")
        click.echo(f"control API on {sandbox.base_url}/sandbox/; billing sink "
                   f"{sandbox.base_url}/sandbox/billing")
        click.echo(f"seed {seed}, time scale {time_scale:g}, scopes {','.join(granted)}; "
                   "stop with SIGTERM or Ctrl-C", err=False)
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
        click.echo("sandbox stopped")

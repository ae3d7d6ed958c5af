"""Helpers for tests that talk to a running sandbox over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .server import Sandbox

TEST_CLIENT_ID = "sandbox-test-client"
TEST_CLIENT_SECRET = "sandbox-test-secret"


@contextmanager
def running_sandbox(**options: Any) -> Iterator[Sandbox]:
    """Start a sandbox on free loopback ports, yield it, and stop it cleanly.

    Options are `Sandbox`'s keyword arguments; the client credentials default to
    TEST_CLIENT_ID / TEST_CLIENT_SECRET and `port` (default 0) picks the HTTP port.
    """
    port = options.pop("port", 0)
    options.setdefault("client_id", TEST_CLIENT_ID)
    options.setdefault("client_secret", TEST_CLIENT_SECRET)
    sandbox = Sandbox(**options)
    sandbox.start(port)
    try:
        yield sandbox
    finally:
        sandbox.stop()

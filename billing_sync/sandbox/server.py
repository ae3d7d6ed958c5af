"""`Sandbox`: the whole local Genesys Cloud org on loopback, started and stopped as one."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .endpoints import create_app
from .platform import Platform

HOST = "127.0.0.1"


class _KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 so clients keep connections open, as they would with Genesys."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end, so their threads do too


class Sandbox:
    """A sandbox Genesys Cloud org: HTTP API + WebSocket streaming + control API + billing sink.

    All durations (token lifetime, faults, heartbeats, retries) are sandbox seconds; the sandbox
    clock runs `time_scale` times faster than real time unless a `clock` is injected.
    """

    def __init__(self, **options: Any) -> None:
        """`options` are `Platform`'s: client_id, client_secret, seed, time_scale, scopes,
        token_ttl_s, billing_secrets, clock, faults, webhook_timeout_s."""
        self.platform = Platform(**options)
        self.app = create_app(self.platform)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """The API and login base, e.g. http://127.0.0.1:8090."""
        return f"http://{HOST}:{self.port}"

    @property
    def stream_port(self) -> int:
        return self.platform.hub.port

    def start(self, port: int = 0) -> Sandbox:
        """Serve HTTP on `port` (0 = pick one) and streaming on a port of its own."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self.platform.start()
        try:
            self._server = make_server(HOST, port, self.app, threaded=True,
                                       request_handler=_KeepAliveHandler)
        except Exception:
            self.platform.stop()
            raise
        self._server.daemon_threads = True
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                        name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: HTTP, streaming, scheduler and webhook workers; idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self.platform.stop()

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

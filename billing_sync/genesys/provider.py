"""One GenesysClient per process, built on first use from Settings (a forked worker builds its own)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from .client import GenesysClient

if TYPE_CHECKING:
    from ..config import Settings


class ClientProvider:
    """Call it for the process's client; ConfigError when the credentials are not set."""

    def __init__(self, settings: Settings, *, client: GenesysClient | None = None, **options: Any) -> None:
        self._settings = settings
        self._options = options
        self._lock = threading.Lock()
        self._client = client
        # A client handed in (tests) belongs to whoever made it; never rebuilt, never closed here.
        self._owned = client is None
        self._pid = os.getpid()

    def __call__(self) -> GenesysClient:
        with self._lock:
            if self._owned and (self._client is None or self._pid != os.getpid()):
                # After a fork the parent's pooled connections are not ours to use.
                self._client = GenesysClient.from_settings(self._settings, **self._options)
                self._pid = os.getpid()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._owned and self._client is not None and self._pid == os.getpid():
                self._client.close()
            if self._owned:
                self._client = None

"""Helpers for the integration tests: the client against the sandbox org over real sockets."""

from __future__ import annotations

import time
from decimal import Decimal
from collections.abc import Callable

import httpx

from billing_sync.config import Settings
from billing_sync.genesys.client import GenesysClient
from billing_sync.sandbox.control_client import SandboxControl as ControlClient
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that notes each exchange; `lose_answer` simulates a timeout after sending."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[str, str, int, str | None]] = []
        self.lose_answer: Callable[[httpx.Request], bool] = lambda request: False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        self.exchanges.append((request.method, request.url.path, response.status_code,
                               response.headers.get("Retry-After")))
        if self.lose_answer(request):
            # The org did the work; the answer never arrives (a read timeout).
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request)
        return response

    def statuses(self, method: str, path_part: str = "") -> list[int]:
        return [status for m, path, status, _ in self.exchanges if m == method and path_part in path]

    def close(self) -> None:
        self._inner.close()


def sandbox_settings(sandbox, **changes) -> Settings:
    """Settings pointing at the sandbox, as a deployment would set them."""
    values = {"webhook_username": "genesys", "webhook_password": "hook-password-1",
              "billing_rate_per_minute": Decimal("0.60"), "billing_currency": "EUR",
              "genesys_environment": sandbox.base_url, "genesys_client_id": TEST_CLIENT_ID,
              "genesys_client_secret": TEST_CLIENT_SECRET, **changes}
    return Settings(**values)


class SandboxControl(ControlClient):
    """The sandbox's /sandbox/* control API (contract §10) for a sandbox running in the test."""

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox.base_url)


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def client_for(sandbox, **options) -> GenesysClient:
    return GenesysClient.from_settings(sandbox_settings(sandbox), **options)

"""Fixtures for the Genesys client's unit tests: a fake clock, recorded sleeps, a scripted org.

The scripted org is an `httpx.MockTransport` handler that answers the token endpoint and
whatever routes a test declares, and records every request. Faults that the sandbox can
produce are tested against the sandbox (test_sandbox_*.py); these tests cover the ones it
cannot, and the client's logic in isolation.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import uuid
from collections.abc import Callable

import httpx
import pytest

from billing_sync.genesys.client import GenesysClient

API = "https://api.example.test"
LOGIN = "https://login.example.test"
CLIENT_ID = "client-id-7f3a"
CLIENT_SECRET = "client-secret-" + uuid.uuid4().hex


class FakeClock:
    """Monotonic seconds that move only when a test (or a recorded sleep) moves them."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """Stands in for time.sleep: records each wait and moves the fake clock instead."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def error_body(status: int, code: str, message: str = "failed", **extra) -> dict:
    return {"message": message, "code": code, "status": status, "contextId": str(uuid.uuid4()),
            "details": [], "errors": [], **extra}


def genesys_error(status: int, code: str, message: str = "failed", headers=None, **extra) -> httpx.Response:
    return httpx.Response(status, json=error_body(status, code, message, **extra), headers=headers)


Handler = Callable[[httpx.Request], httpx.Response]


class ScriptedOrg:
    """Answers `POST /oauth/token` with token-1, token-2, … and declared routes; records requests."""

    def __init__(self, token_ttl_s: int = 86_400) -> None:
        self.token_ttl_s = token_ttl_s
        self.requests: list[httpx.Request] = []
        self.tokens_issued: list[str] = []
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self._counter = itertools.count(1)
        self.token_handler: Handler | None = None

    def route(self, method: str, path: str, handler: Handler | httpx.Response | list) -> None:
        """Answer METHOD path (a regex) with a handler, a fixed response, or responses in turn.

        A later route for the same path wins, so a test can override a fixture's.
        """
        if isinstance(handler, list):
            answers = iter(handler)
            answer = lambda _r: next(answers)  # noqa: E731
        elif isinstance(handler, httpx.Response):
            answer = lambda _r: handler  # noqa: E731
        else:
            answer = handler
        self._routes.insert(0, (method, re.compile(path + "$"), answer))

    def api_requests(self, method: str | None = None) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth/token" and (method is None or r.method == method)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/oauth/token":
            return (self.token_handler or self._issue_token)(request)
        for method, pattern, handler in self._routes:
            if request.method == method and pattern.match(request.url.path):
                return handler(request)
        return genesys_error(404, "not.found", f"no route {request.method} {request.url.path}")

    def _issue_token(self, request: httpx.Request) -> httpx.Response:
        token = f"token-{next(self._counter)}-{uuid.uuid4().hex}"
        self.tokens_issued.append(token)
        return httpx.Response(200, json={"access_token": token, "token_type": "bearer",
                                         "expires_in": self.token_ttl_s})

    def bearer(self, request: httpx.Request) -> str:
        return request.headers.get("Authorization", "").removeprefix("Bearer ")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps(clock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def org() -> ScriptedOrg:
    return ScriptedOrg()


@pytest.fixture
def make_client(org, clock, sleeps):
    """make_client(**options) → a GenesysClient talking to the scripted org, on the fake clock."""
    made: list[GenesysClient] = []

    def make(**options) -> GenesysClient:
        options = {"api_base": API, "login_base": LOGIN, "client_id": CLIENT_ID,
                   "client_secret": CLIENT_SECRET, "clock": clock, "sleep": sleeps,
                   "rng": random.Random(7), "transport": httpx.MockTransport(org), **options}
        client = GenesysClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def genesys(make_client) -> GenesysClient:
    return make_client()


def json_of(request: httpx.Request):
    return json.loads(request.content or b"null")

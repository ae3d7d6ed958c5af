"""Fixtures: a running sandbox per test, an authenticated client, a webhook receiver."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest

from billing_sync.sandbox import Sandbox
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, running_sandbox

T = TypeVar("T")
FAST = 200.0  # sandbox seconds per real second in most tests


def wait_for(check: Callable[[], T], timeout: float = 3.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def get_token(base_url: str, client_id: str = TEST_CLIENT_ID,
              secret: str = TEST_CLIENT_SECRET) -> httpx.Response:
    return httpx.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials"},
                      auth=(client_id, secret))


def api_client(sandbox: Sandbox) -> httpx.Client:
    token = get_token(sandbox.base_url).json()["access_token"]
    return httpx.Client(base_url=sandbox.base_url, timeout=5,
                        headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(time_scale=FAST, seed=7) as running:
        yield running


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with api_client(sandbox) as client:
        yield client


@pytest.fixture
def control(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.base_url}/sandbox", timeout=5) as client:
        yield client


def new_call(control: httpx.Client) -> str:
    response = control.post("/conversations", json={})
    assert response.status_code == 201
    return response.json()["id"]


def play(api: httpx.Client, conversation_id: str, url: str, **options: Any) -> httpx.Response:
    return api.post(f"/api/v2/conversations/voice/{conversation_id}/actions/play",
                    json={"play": {"url": url, **options}})


def truth_of(control: httpx.Client, playback_id: str) -> dict[str, Any]:
    playbacks = control.get("/truth").json()["playbacks"]
    return next(p for p in playbacks if p["playbackId"] == playback_id)


class Receiver:
    """A local HTTP endpoint recording every POST; answers from `statuses`, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append({"headers": dict(self.headers),
                                              "body": json.loads(body), "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["status"] < 300]

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def register_webhook(api: httpx.Client, address: str, **overrides: Any) -> dict[str, Any]:
    body = {"name": "PlaybackBillingSync", "eventFilters": ["conversation:voice:playback"],
            "address": address, "method": "POST", "enabled": True, "authScheme": "basic",
            "authUsername": "genesys", "authPassword": "s3cret", **overrides}
    response = api.post("/api/v2/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

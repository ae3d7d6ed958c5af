"""Fixtures for playback control: the sandbox org, an app whose Genesys client points at it.

Imported by tests/conftest.py so every test directory can use them.
"""

from __future__ import annotations

import threading
from contextlib import closing

import pytest
from werkzeug.serving import make_server

from billing_sync import create_app
from billing_sync.genesys.client import GenesysClient
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, running_sandbox

from .genesys.sandbox_helpers import SandboxControl

MEDIA_HOST = "media.example.com"
TIME_SCALE = 50.0                 # sandbox heartbeats every 30 / 50 = 0.6 s
HEARTBEAT_S = 30 / TIME_SCALE
SHORT_MEDIA = f"https://{MEDIA_HOST}/short.wav?duration_ms=20000"    # 0.4 s of real time
LONG_MEDIA = f"https://{MEDIA_HOST}/long.wav?duration_ms=3600000"    # plays on for the whole test
OTHER_MEDIA = f"https://{MEDIA_HOST}/other.mp3?duration_ms=3600000"


@pytest.fixture
def sandbox():
    with running_sandbox(seed=0, time_scale=TIME_SCALE) as sandbox:
        yield sandbox


@pytest.fixture
def calls(sandbox):
    """The sandbox's control API: place_call, disconnect, press, speak, faults, truth."""
    with closing(SandboxControl(sandbox)) as control:
        yield control


@pytest.fixture
def control_settings(settings, sandbox):
    return settings.replace(genesys_environment=sandbox.base_url, genesys_client_id=TEST_CLIENT_ID,
                            genesys_client_secret=TEST_CLIENT_SECRET, media_allowed_hosts=(MEDIA_HOST,))


@pytest.fixture
def make_control_app(control_settings):
    """make_control_app(**client_options) → an app whose Genesys client is built with those options."""
    made = []

    def make(settings=None, **client_options):
        settings = settings or control_settings
        client = GenesysClient.from_settings(settings, **client_options) if client_options else None
        app = create_app(settings, genesys_client=client)
        app.config["TESTING"] = True
        made.append((app, client))
        return app

    yield make
    for app, client in made:
        app.extensions["billing_sync"].genesys.close()
        app.extensions["billing_sync"].db.dispose()
        if client is not None:
            client.close()


@pytest.fixture
def control_app(make_control_app):
    return make_control_app()


@pytest.fixture
def control_client(control_app):
    return control_app.test_client()


@pytest.fixture
def admin_key(control_app):
    """admin_key(role="admin") → (headers, key id) for a new key of that role."""
    from billing_sync.keys import create_key

    def make(role: str = "admin"):
        with control_app.extensions["billing_sync"].db.write() as session:
            row, key = create_key(session, role=role, name=f"test {role}", actor="test")
        return {"Authorization": f"Bearer {key}"}, row.id

    return make


@pytest.fixture
def served_app(control_app):
    """The app on a loopback port, so the sandbox can deliver webhooks to it."""
    server = make_server("127.0.0.1", 0, control_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)

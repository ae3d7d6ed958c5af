"""The sandbox org's webhooks, duplicated and reordered, land in the ledger as the ground truth."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from billing_sync.genesys.client import GenesysClient
from billing_sync.models import Playback, PlaybackEvent
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, running_sandbox

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..genesys.sandbox_helpers import SandboxControl

pytestmark = pytest.mark.e2e
MEDIA = "https://media.example.com/{name}.wav?duration_ms={ms}"


def _wait(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def _ledger(db):
    with db.read() as session:
        rows = session.execute(select(Playback.playback_id, Playback.state, Playback.duration_ms)).all()
    return {row.playback_id: (row.state, row.duration_ms) for row in rows}


def test_faulty_webhook_delivery_ingests_exactly_the_truth(gunicorn, db):
    faults = {"webhook_duplicate_rate": 0.5, "webhook_reorder": True}
    with running_sandbox(time_scale=100.0, seed=11, faults=faults) as sandbox:
        control = SandboxControl(sandbox)
        client = GenesysClient(api_base=sandbox.base_url, login_base=sandbox.base_url,
                               client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET)
        try:
            client.register_webhook("PlaybackBillingSync", f"{gunicorn.url}/webhooks/genesys",
                                    WEBHOOK_USER, WEBHOOK_PASSWORD)
            calls = [control.place_call() for _ in range(6)]
            client.start_playback(calls[0], MEDIA.format(name="welcome", ms=20_000))   # completes
            client.start_playback(calls[1], MEDIA.format(name="long", ms=600_000), max_duration_s=3600)
            client.stop_playback(calls[1])                                               # stopped
            client.start_playback(calls[2], MEDIA.format(name="first", ms=600_000), max_duration_s=3600)
            client.start_playback(calls[2], MEDIA.format(name="second", ms=8_000))     # replaces: stopped + completed
            client.start_playback(calls[3], MEDIA.format(name="hangup", ms=600_000), max_duration_s=3600)
            control.disconnect(calls[3])                                                 # stopped by hang-up
            client.start_playback(calls[4], "https://media.example.com/broken.wav?fail=1")  # failed
            client.start_playback(calls[5], MEDIA.format(name="capped", ms=600_000), max_duration_s=15)  # completed at cap
            truth = _wait(
                lambda: (t := control.truth()) and all(p["state"] in ("completed", "stopped", "failed") for p in t) and t,
                timeout=20, what="every sandbox playback to end",
            )
            expected = {p["playbackId"]: (p["state"], p["duration"]) for p in truth}
            _wait(lambda: _ledger(db) == expected, timeout=30, what="the ledger to match the truth")
        finally:
            client.close()
            control.close()
    assert len(expected) == 7
    assert sorted(state for state, _ in expected.values()) == ["completed", "completed", "completed", "failed", "stopped", "stopped", "stopped"]
    with db.read() as session:
        # Each event once, however many copies were delivered.
        events = session.scalar(select(func.count()).select_from(PlaybackEvent))
        distinct = session.scalar(select(func.count(func.distinct(PlaybackEvent.source_event_id))))
    assert events == distinct > 7

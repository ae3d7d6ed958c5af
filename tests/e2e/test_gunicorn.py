"""End to end under gunicorn: acknowledged events survive kill -9; bad config stops start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from billing_sync import audit
from billing_sync.models import PlaybackEvent

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from .conftest import gunicorn_command, service_env

pytestmark = pytest.mark.e2e


def test_a_killed_worker_loses_no_acknowledged_event(gunicorn, db, events):
    acknowledged: set[str] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def post_forever(n: int) -> None:
        with httpx.Client(base_url=gunicorn.url, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD), timeout=10) as client:
            i = 0
            while not stop.is_set():
                batch = [events.event(event_id=f"w{n}-{i}-{k}", playback_id=f"p{n}-{i}-{k}") for k in range(5)]
                i += 1
                try:
                    response = client.post("/webhooks/genesys", json=batch)
                except httpx.TransportError:
                    continue  # not acknowledged: Genesys would redeliver
                if response.status_code == 200:
                    with lock:
                        acknowledged.update(item["id"] for item in batch)

    threads = [threading.Thread(target=post_forever, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    killed = []
    try:
        for _ in range(3):
            time.sleep(0.7)
            victim = gunicorn.workers()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        time.sleep(0.7)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(acknowledged) > 50
    with db.read() as session:
        stored = set(session.scalars(select(PlaybackEvent.source_event_id)))
    assert acknowledged <= stored
    assert not set(killed) & set(gunicorn.workers())  # the master replaced them
    assert httpx.get(f"{gunicorn.url}/healthz").status_code == 200


def test_conflicts_from_several_workers_keep_the_chain(gunicorn, db, events):
    """Conflicting terminals posted in parallel through all workers: one unbroken audit chain."""
    lifecycles = [events.lifecycle() for _ in range(20)]

    def post(payload):
        with httpx.Client(base_url=gunicorn.url, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD), timeout=10) as client:
            assert client.post("/webhooks/genesys", json=payload).status_code == 200

    for lifecycle in lifecycles:
        post(lifecycle)
    conflicts = [events.event(playback_id=l[0]["playbackId"], state="failed", sequence=9) for l in lifecycles]
    threads = [threading.Thread(target=post, args=(c,)) for c in conflicts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with db.read() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.verified == 40  # 20 charges, then 20 conflicts


def test_missing_setting_stops_gunicorn_with_one_line(database_url, tmp_path):
    env = service_env(database_url)
    del env["BILLING_SYNC_WEBHOOK_PASSWORD"]
    result = subprocess.run(
        gunicorn_command("--bind", "127.0.0.1:0"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "BILLING_SYNC_WEBHOOK_PASSWORD is required" in result.stderr
    assert "Traceback" not in result.stderr

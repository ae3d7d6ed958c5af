"""GET /metrics under gunicorn: every worker's counts add up, a dead worker's are kept, the directory is tidied."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from billing_sync.models import PlaybackEvent

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..metrics.conftest import Scrape, scrape
from .conftest import Gunicorn, gunicorn_command, service_env

pytestmark = pytest.mark.e2e
INGEST = {"route": "/webhooks/genesys", "method": "POST"}
STALE_ACCEPTED = 1_000_000


def post_all(url: str, bodies: list, *, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD), threads: int = 8) -> list[int]:
    """POST each body on a new connection from `threads` threads (so every worker gets some); the statuses."""
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(bodies)

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            status = httpx.post(f"{url}/webhooks/genesys", json=body, auth=auth, timeout=30).status_code
            with lock:
                statuses.append(status)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def scrape_server(server: Gunicorn) -> Scrape:
    """One scrape on a new connection: it lands on whichever worker accepts it."""
    with httpx.Client(base_url=server.url) as client:
        return scrape(client)


def stale_counter(directory: Path) -> None:
    """What a previous master left behind: a worker file claiming a million accepted events."""
    values = MmapedDict(str(directory / "counter_4194301.db"))
    values.write_value(mmap_key("billing_sync_webhook_events", "billing_sync_webhook_events_total",
                                ["result"], ["accepted"], "stale"), STALE_ACCEPTED, 0.0)
    values.close()


def assert_ingest_counts(metrics: Scrape, *, accepted: int, duplicates: int, ok: int, bad: int, unauthorized: int):
    assert metrics.value("billing_sync_webhook_events_total", result="accepted") == accepted
    assert metrics.value("billing_sync_webhook_events_total", result="duplicate") == duplicates
    assert metrics.value("billing_sync_http_requests_total", **INGEST, status="200") == ok
    assert metrics.value("billing_sync_http_requests_total", **INGEST, status="400") == bad
    assert metrics.value("billing_sync_http_requests_total", **INGEST, status="401") == unauthorized
    assert metrics.value("billing_sync_http_request_duration_seconds_count", **INGEST) == ok + bad + unauthorized


def replaced(server: Gunicorn, victim: int, count: int, timeout_s: float = 30) -> list[int]:
    """Wait until the master has replaced `victim` and runs `count` workers again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = server.workers()
        if victim not in workers and len(workers) == count:
            server.wait_ready()
            return workers
        time.sleep(0.05)
    raise TimeoutError(f"worker {victim} was not replaced")


def test_counts_add_up_over_workers_and_outlive_a_killed_one(database_url, tmp_path, events, db):
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale_counter(directory)
    server = Gunicorn(database_url, tmp_path, workers=3, env=service_env(database_url, PROMETHEUS_MULTIPROC_DIR=str(directory)))
    try:
        assert not (directory / "counter_4194301.db").exists()  # wiped at master start
        batches = [[events.event() for _ in range(5)] for _ in range(40)]
        statuses = post_all(server.url, batches + batches[:10] + [{"eventBody": {}}] * 5)
        statuses += post_all(server.url, batches[:3], auth=(WEBHOOK_USER, "wrong"))
        assert sorted(statuses) == [200] * 50 + [400] * 5 + [401] * 3
        with db.read() as session:
            assert session.scalar(select(func.count()).select_from(PlaybackEvent)) == 200
        workers = server.workers()
        counted = [pid for pid in workers if (directory / f"counter_{pid}.db").exists()]
        assert len(counted) >= 2, "the posts should have reached several workers"
        expected = {"accepted": 200, "duplicates": 50, "ok": 50, "bad": 5, "unauthorized": 3}
        for _ in range(6):  # every worker must answer the same totals
            metrics = scrape_server(server)
            assert_ingest_counts(metrics, **expected)
            assert metrics.value("billing_sync_http_requests_in_flight") == 1

        victim = counted[0]
        os.kill(victim, signal.SIGKILL)
        replaced(server, victim, 3)
        assert not list(directory.glob(f"*_{victim}.db"))  # live gauge dropped, counts folded
        assert (directory / "counter_archive.db").exists() and (directory / "histogram_archive.db").exists()
        for _ in range(3):
            metrics = scrape_server(server)
            assert_ingest_counts(metrics, **expected)
            assert metrics.value("billing_sync_http_requests_in_flight") == 1
    finally:
        server.stop()
    # Every worker has exited and been folded: the archive alone holds the totals.
    assert sorted(path.name for path in directory.glob("*.db")) == ["counter_archive.db", "histogram_archive.db"]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    assert_ingest_counts(Scrape(generate_latest(registry).decode()), **expected)


def test_without_a_directory_each_master_makes_its_own_and_removes_it(database_url, tmp_path, events):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = Gunicorn(database_url, tmp_path, workers=2, env=service_env(database_url, TMPDIR=str(scratch)))
    try:
        [directory] = scratch.glob("billing-sync-metrics-*")
        assert post_all(server.url, [[events.event()] for _ in range(12)]) == [200] * 12
        metrics = scrape_server(server)
        assert metrics.value("billing_sync_webhook_events_total", result="accepted") == 12
        assert list(directory.glob("counter_*.db"))
    finally:
        server.stop()
    assert not directory.exists()


def test_a_master_that_cannot_start_leaves_no_directory(database_url, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = service_env(database_url, TMPDIR=str(scratch))
    del env["BILLING_SYNC_WEBHOOK_PASSWORD"]
    result = subprocess.run(gunicorn_command("--bind", "127.0.0.1:0"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "BILLING_SYNC_WEBHOOK_PASSWORD is required" in result.stderr
    assert list(scratch.iterdir()) == []


def test_a_malformed_setting_stops_gunicorn_with_one_line(database_url, tmp_path):
    env = service_env(database_url, BILLING_SYNC_THREADS="lots")
    result = subprocess.run(gunicorn_command("--bind", "127.0.0.1:0"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "BILLING_SYNC_THREADS must be a whole number, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr

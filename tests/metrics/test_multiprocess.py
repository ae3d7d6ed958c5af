"""The metrics directory's housekeeping, as gunicorn.conf.py's hooks use it (its e2e test: tests/e2e/test_metrics.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from billing_sync.metrics import multiprocess

from .conftest import Scrape

INGEST = {"route": "/webhooks/genesys", "method": "POST"}

COUNT_IN_A_WORKER = """
import sys
from billing_sync.metrics import instruments
instruments.request_started()
instruments.count_webhook_events(accepted=int(sys.argv[1]), duplicates=1)
instruments.observe_request("/webhooks/genesys", "POST", 200, float(sys.argv[2]))
print(__import__("os").getpid())
"""


def worker(directory, accepted: int, seconds: float) -> int:
    """A real process counting into `directory` as a gunicorn worker would, then dying mid-request."""
    env = {**os.environ, multiprocess.MULTIPROC_DIR_VARIABLE: str(directory)}
    done = subprocess.run([sys.executable, "-c", COUNT_IN_A_WORKER, str(accepted), str(seconds)], env=env,
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def totals(directory) -> Scrape:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return Scrape(generate_latest(registry).decode())


def test_a_dead_workers_counts_are_folded_and_its_live_gauge_dropped(tmp_path):
    pids = [worker(tmp_path, 3, 0.02), worker(tmp_path, 4, 0.3), worker(tmp_path, 5, 7.0)]
    before = totals(tmp_path)
    assert before.value("billing_sync_http_requests_in_flight") == 3
    for pid in pids[:2]:
        multiprocess.worker_exited(tmp_path, pid)
    after = totals(tmp_path)
    assert after.value("billing_sync_http_requests_in_flight") == 1  # only the live worker's
    for name, labels in (("billing_sync_webhook_events_total", {"result": "accepted"}),
                         ("billing_sync_webhook_events_total", {"result": "duplicate"}),
                         ("billing_sync_http_request_duration_seconds_count", INGEST)):
        assert after.value(name, **labels) == before.value(name, **labels)
    # Summed in another order: equal to the last bit or two.
    assert after.value("billing_sync_http_request_duration_seconds_sum", **INGEST) == pytest.approx(7.32)
    assert after.value("billing_sync_webhook_events_total", result="accepted") == 12
    buckets = after.labelled("billing_sync_http_request_duration_seconds_bucket")
    assert buckets == before.labelled("billing_sync_http_request_duration_seconds_bucket")
    assert [value for labels, value in sorted(buckets.items(), key=lambda item: float(dict(item[0])["le"]))] == \
        [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted([
        "counter_archive.db", "histogram_archive.db", f"counter_{pids[2]}.db", f"histogram_{pids[2]}.db",
        f"gauge_livesum_{pids[2]}.db"])


def test_a_private_directory_is_kept_across_a_reload_and_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    environ: dict[str, str] = {}
    made = multiprocess.choose_directory(environ)
    assert made.is_dir() and made.parent == tmp_path and environ["PROMETHEUS_MULTIPROC_DIR"] == str(made)
    assert multiprocess.choose_directory(environ) == made  # the config read again (HUP): same master
    inherited = {**environ, multiprocess.OWNER_VARIABLE: f"1 {made}"}  # another master made it (USR2)
    own = multiprocess.choose_directory(inherited)
    assert own != made and own.is_dir()
    multiprocess.remove_if_private(made, inherited)
    assert made.is_dir()
    multiprocess.remove_if_private(made, environ)
    assert not made.exists()


def test_an_operators_directory_is_made_wiped_and_never_removed(tmp_path):
    named = tmp_path / "run" / "metrics"
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(named)}
    assert multiprocess.choose_directory(environ) == named and named.is_dir()
    (named / "counter_1.db").write_bytes(b"old")
    (named / "leftover").mkdir()
    multiprocess.wipe(named)
    assert list(named.iterdir()) == []
    multiprocess.remove_if_private(named, environ)
    assert named.is_dir() and multiprocess.OWNER_VARIABLE not in environ

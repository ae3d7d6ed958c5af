"""`scripts/bench metrics`: what /metrics costs a request, and what a scrape costs as the tables grow.

1. Observation: the instrumentation every request pays (in-flight gauge up and down, one
   request counter, one latency histogram, the webhook event counter), timed in a process
   with file-backed values as under gunicorn (`PROMETHEUS_MULTIPROC_DIR`) and in one
   without, against the baseline of the same run: a no-op Flask request (the ingest
   benchmark's no-op app through Flask's test client).
2. Scrape: for each database (SQLite, and PostgreSQL when reachable), the database part of
   a scrape (`DatabaseCollector`) over a small ledger and over one of `--rows` playbacks
   (each charged, its outbox row delivered except 0.1% pending and 0.01% dead; 10% of them
   a discrepancy in one of 50 reconciliation runs), against the baseline of the same run: one
   `SELECT count(*) FROM outbox`, the least a scrape that scanned the outbox would cost.

Writes bench-results/metrics-<rows>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

from billing_sync import schema
from billing_sync.db import Database
from billing_sync.metrics.database import DatabaseCollector
from billing_sync.models import DeliveryCount, ReconciliationRun, StreamListener

from .databases import database_kinds, write_results
from .ingest import fresh_database
from .reconcile import SINCE, generate

ROOT = Path(__file__).resolve().parent.parent
SMALL_ROWS = 10_000
RUNS = 50

# Run in a child process: prometheus-client picks file-backed values at import.
OBSERVE = """
import json, sys, time
from benchmarks.noop_app import app
from billing_sync.metrics import instruments

def per_call_us(function, n):
    started = time.perf_counter()
    for _ in range(n):
        function()
    return (time.perf_counter() - started) / n * 1e6

def instrumented_request():
    instruments.request_started()
    instruments.observe_request("/webhooks/genesys", "POST", 200, 0.012)
    instruments.count_webhook_events(accepted=1, duplicates=0)
    instruments.request_finished()

client = app.test_client()
body = b'{"eventBody": {}}'
noop = lambda: client.post("/webhooks/genesys", data=body, content_type="application/json")
n = int(sys.argv[1])
per_call_us(instrumented_request, n // 10)
per_call_us(noop, n // 100)
rounds = [(per_call_us(instrumented_request, n), per_call_us(noop, n // 10)) for _ in range(3)]
print(json.dumps({"instrumentation_us": min(r[0] for r in rounds), "noop_request_us": min(r[1] for r in rounds)}))
"""

_OUTBOX = """
    INSERT INTO outbox (record_id, message_id, payload, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT id, idempotency_key, '{}',
           CASE WHEN id % 1000 = 0 THEN 'pending' WHEN id % 10000 = 1 THEN 'dead' ELSE 'delivered' END,
           1, created_at, created_at, created_at
    FROM billing_records
"""
_DISCREPANCIES = f"""
    INSERT INTO discrepancies (run_id, kind, status, conversation_id, playback_id)
    SELECT 1 + id % {RUNS},
           CASE id % 8 WHEN 0 THEN 'missing_webhook' WHEN 1 THEN 'missing_stream' WHEN 2 THEN 'state_conflict'
                       WHEN 3 THEN 'duration_mismatch' WHEN 4 THEN 'unbilled_terminal' WHEN 5 THEN 'orphan_charge'
                       WHEN 6 THEN 'analytics_count_mismatch' ELSE 'analytics_duration_mismatch' END,
           CASE id % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'healed' ELSE 'info' END,
           conversation_id, playback_id
    FROM billing_records WHERE id % 10 = 0
"""


def observation(rows: int) -> dict:
    """Per-request instrumentation against a no-op Flask request, file-backed and in-process."""
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for mode, extra in (("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": directory}), ("single_process", {})):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | extra
            done = subprocess.run([sys.executable, "-c", OBSERVE, str(rows)], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout)
            measured["vs_noop_request"] = round(measured["instrumentation_us"] / measured["noop_request_us"], 4)
            results[mode] = {k: round(v, 3) if isinstance(v, float) else v for k, v in measured.items()}
    return results


def populate(db: Database, kind: str, count: int) -> float:
    """Playbacks, events and charges (the reconcile benchmark's), their outbox rows, runs and discrepancies."""
    started = time.perf_counter()
    generate(db, kind, count)
    with db.transaction() as connection:
        connection.execute(insert(ReconciliationRun), [
            {"since": SINCE, "until": SINCE + timedelta(hours=n + 1), "as_of": SINCE + timedelta(hours=n + 2),
             "grace_s": 600, "analytics_lag_s": 900, "tolerance_ms": 1000, "tolerance_basis_points": 200,
             "heal_missing_webhook": True, "heal_duration": True, "requested_by": "bench",
             "analytics_conversations": 0, "created_at": SINCE + timedelta(hours=n + 2)} for n in range(RUNS)])
        connection.exec_driver_sql(_OUTBOX.replace("%", "%%") if kind == "postgresql" else _OUTBOX)
        connection.exec_driver_sql(_DISCREPANCIES.replace("%", "%%") if kind == "postgresql" else _DISCREPANCIES)
        connection.execute(insert(DeliveryCount), [
            {"outcome": "delivered", "answer": "2xx", "attempts": count}, {"outcome": "retry", "answer": "5xx", "attempts": 7}])
        connection.execute(insert(StreamListener), [
            {"shard": f"{i}/4", "state": "connected", "channels_connected": 1, "topics": 30, "connects": 1,
             "disconnects": 0, "last_reason": None, "host": "bench", "pid": 1, "started_at": SINCE,
             "updated_at": SINCE} for i in range(4)])
    analyze = "VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE"
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(analyze)
    return time.perf_counter() - started


def median_ms(function, repeats: int) -> float:
    function()  # warm: connections, statement caches, pages
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return round(statistics.median(timings) * 1000, 3)


def scrape_ms(db: Database, repeats: int) -> float:
    collector = DatabaseCollector(db)
    return median_ms(lambda: list(collector.collect()), repeats)


def outbox_scan_ms(db: Database, repeats: int) -> float:
    def scan() -> None:
        with db.read() as session:
            session.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    return median_ms(scan, repeats)


def one_size(kind: str, workdir: Path, args, rows: int) -> dict:
    url = fresh_database(kind, workdir, args.postgres, name="billing_sync_bench_metrics")
    if kind == "postgresql":
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        url = url.replace("bench.db", f"metrics-{rows}.db")
    db = Database.from_url(url)
    try:
        schema.upgrade(db.engine)
        generated_s = populate(db, kind, rows)
        scrape = scrape_ms(db, args.repeats)
        scan = outbox_scan_ms(db, args.repeats)
        scrape_again = scrape_ms(db, args.repeats)
    finally:
        db.dispose()
    return {"rows": rows, "generate_s": round(generated_s, 1), "scrape_ms": min(scrape, scrape_again),
            "outbox_count_ms": scan, "scrape_vs_outbox_count": round(min(scrape, scrape_again) / scan, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="playbacks (and charges) in the large database")
    parser.add_argument("--repeats", type=int, default=20, help="scrapes timed per size (median)")
    parser.add_argument("--observations", type=int, default=200_000, help="instrumented requests timed per round")
    parser.add_argument("--postgres", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    results = {"settings": vars(args) | {"small_rows": SMALL_ROWS}, "cpus": os.cpu_count(),
               "observation": observation(args.observations), "scrape": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in database_kinds(args.postgres):
            print(f"{kind}: {SMALL_ROWS} and {args.rows} playbacks ...", file=sys.stderr)
            small = one_size(kind, Path(tmp), args, SMALL_ROWS)
            large = one_size(kind, Path(tmp), args, args.rows)
            results["scrape"][kind] = {"small": small, "large": large,
                                       "large_vs_small": round(large["scrape_ms"] / small["scrape_ms"], 2)}
    print(f"{'instrumentation per request':<30} {'µs':>8} {'no-op request µs':>17} {'vs no-op':>9}")
    for mode, run in results["observation"].items():
        print(f"{mode:<30} {run['instrumentation_us']:>8} {run['noop_request_us']:>17} {run['vs_noop_request']:>9.1%}")
    print(f"\n{'database':<11} {'rows':>10} {'scrape ms':>10} {'count(*) outbox ms':>19} {'vs count':>9}"
          f" {'scrape large/small':>19}")
    for kind, run in results["scrape"].items():
        for size in ("small", "large"):
            part = run[size]
            print(f"{kind:<11} {part['rows']:>10} {part['scrape_ms']:>10} {part['outbox_count_ms']:>19}"
                  f" {part['scrape_vs_outbox_count']:>9}" + (f" {run['large_vs_small']:>19}" if size == "large" else ""))
    write_results(ROOT, f"metrics-{args.rows}", results)


if __name__ == "__main__":
    main()

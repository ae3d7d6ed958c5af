"""`scripts/bench dispatch`: outbox delivery to the local billing sink against a plain httpx loop.

For each database (SQLite, and PostgreSQL when reachable): a fresh migrated database with
N billing records and their outbox rows (written by the real ingest path), the sandbox
billing sink in its own process, then in the same run

- baseline: N signed POSTs of the same bodies from one tight httpx loop (one keep-alive
  connection, nothing recorded), and
- dispatch: the dispatcher delivering the N outbox rows (claim, sign, post with bounded
  concurrency, settle and audit in the database).

Prints deliveries/s and the ratio; writes bench-results/dispatch.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

from .databases import database_kinds, write_results
from sqlalchemy import func, select

from billing_sync import schema
from billing_sync.billing.delivery import Deliverer
from billing_sync.billing.retry import RetryPolicy
from billing_sync.billing.signing import Signer
from billing_sync.db import Database
from billing_sync.ledger.events import PlaybackEvent, ReceivedEvent
from billing_sync.ledger.ingest import record_events
from billing_sync.ledger.rating import Tariff
from billing_sync.models import OutboxMessage
from billing_sync.workers.dispatcher import DispatchOptions, Dispatcher

from .ingest import fresh_database, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"bench-dispatch-secret-32-bytes!!").decode()
TARIFF = Tariff(Decimal("0.60"), "USD")


def start_sink() -> tuple[subprocess.Popen, str]:
    """The sandbox (and its billing sink) as its own process, as a real billing system would be."""
    port = free_port()
    env = dict(os.environ, GENESYS_CLIENT_ID="bench", GENESYS_CLIENT_SECRET="bench-secret",
               BILLING_WEBHOOK_SECRET=SECRET, LOG_LEVEL="WARNING")
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "billing-sync"), "sandbox", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/sandbox/billing"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the sandbox did not start")


def seed(db: Database, count: int) -> None:
    """`count` completed playbacks through the real ingest path: records, outbox rows, audit."""
    moment = datetime.now(UTC)
    for start in range(0, count, 2000):
        received = []
        for n in range(start, min(count, start + 2000)):
            playback_id = f"bench-{uuid.uuid4()}"
            event = PlaybackEvent(conversation_id=f"conv-{n % 100}", playback_id=playback_id, state="completed",
                                  duration_ms=12_000 + n, sequence=3, occurred_at=moment)
            received.append(ReceivedEvent(f"{playback_id}-e", event, {"id": f"{playback_id}-e"}))
        with db.transaction() as connection:
            record_events(connection, received, source="webhook", tariff=TARIFF)


def baseline(url: str, bodies: list[tuple[str, str]]) -> float:
    """Deliveries/s of one tight httpx loop posting the same signed bodies."""
    signer = Signer([SECRET])
    with httpx.Client(headers={"Content-Type": "application/json"}) as client:
        started = time.perf_counter()
        for message_id, payload in bodies:
            response = client.post(url, content=payload.encode(), headers=signer.headers(f"base-{message_id}", payload))
            response.raise_for_status()
        return len(bodies) / (time.perf_counter() - started)


def dispatch(db: Database, url: str, args) -> tuple[float, dict]:
    options = DispatchOptions(batch_size=args.batch_size, concurrency=args.concurrency, lease_s=900, timeout_s=10)
    deliverer = Deliverer(url, Signer([SECRET]), concurrency=args.concurrency)
    dispatcher = Dispatcher(db, deliverer, RetryPolicy((0, 1, 5)), options=options)
    started, cpu = time.perf_counter(), time.process_time()
    stats = dispatcher.run(threading.Event(), once=True)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    # CPU this process spent per delivery (SQLite's work included, PostgreSQL's server not).
    cpu_ms = round(1000 * cpu / max(stats.delivered, 1), 3)
    return stats.delivered / elapsed, {"delivered": stats.delivered, "retry": stats.retry, "dead": stats.dead,
                                       "dispatcher_cpu_ms_per_delivery": cpu_ms}


def run_one(kind: str, workdir: Path, args) -> dict:
    url = fresh_database(kind, workdir, args.postgres)
    if kind == "postgresql":
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    db = Database.from_url(url)
    schema.upgrade(db.engine)
    seed(db, args.count)
    with db.read() as session:
        bodies = list(session.execute(select(OutboxMessage.message_id, OutboxMessage.payload)))
    sink, sink_url = start_sink()
    try:
        base = baseline(sink_url, bodies)
        rate, stats = dispatch(db, sink_url, args)
        with db.read() as session:
            delivered = session.scalar(select(func.count()).where(OutboxMessage.status == "delivered"))
        received = httpx.get(sink_url, timeout=30).json()["received"]
        verified = sum(1 for r in received if r["verified"] and not r["webhook_id"].startswith("base-"))
    finally:
        sink.terminate()
        sink.wait(30)
        db.dispose()
    return {"baseline_per_s": round(base, 1), "dispatch_per_s": round(rate, 1), "ratio": round(rate / base, 3),
            "delivered_in_db": delivered, "verified_by_sink": verified, **stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="outbox rows to deliver")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = database_kinds(args.postgres)
    results = {"settings": vars(args), "cpus": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            results["runs"][kind] = run_one(kind, Path(tmp), args)
    print(f"{args.count} deliveries, concurrency {args.concurrency}, batch {args.batch_size}, {os.cpu_count()} CPUs")
    print(f"{'database':<11} {'baseline/s':>11} {'dispatch/s':>11} {'ratio':>7} {'delivered':>10} {'verified':>9}"
          f" {'cpu ms/delivery':>16}")
    for kind, run in results["runs"].items():
        print(f"{kind:<11} {run['baseline_per_s']:>11} {run['dispatch_per_s']:>11} {run['ratio']:>7.0%} "
              f"{run['delivered_in_db']:>10} {run['verified_by_sink']:>9} {run['dispatcher_cpu_ms_per_delivery']:>16}")
    write_results(ROOT, "dispatch", results)


if __name__ == "__main__":
    main()

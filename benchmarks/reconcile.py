"""`scripts/bench reconcile`: a reconcile run over N playbacks against a bare SQL full outer join.

For each database (SQLite, and PostgreSQL when reachable): a fresh migrated database with
N playbacks generated straight into it by SQL (10 per conversation, whole-second
durations): each playback's terminal event from the webhook and from the stream, and its
charge, with 1% of each discrepancy kind mixed in (missing webhook, missing stream, state
conflict, a webhook duration the stream and analytics contradict, unbilled terminal,
orphan charge) and analytics figures per conversation derived from the same data, 1% of
conversations off by one playback. Only terminal events are generated; each playback's
first terminal event per witness is then copied onto its row from them
(`terminals.FILL_FROM_EVENTS`), as ingest keeps it.

Then, in the same run:

- bare join: one `SELECT count(*)` over the webhook's terminal events FULL OUTER JOIN the
  stream's, LEFT JOIN the billing records: the least any comparison of these tables costs.
  It runs three times (before, between and after the two runs); the ratios are against
  its median;
- compare: a reconcile run with healing switched off (evidence, comparison, counts);
- reconcile: a full run (a second one over the same data) that also heals: one charge per
  missing webhook, one adjustment per corroborated duration, each with its outbox row and
  audit entry.

Each run's steps are timed too (`RunResult.seconds`: evidence, compare, each heal, finish,
commit), so the table says where a full run's time goes beyond the comparison.

Time: wall seconds, and CPU seconds (this process's plus, for a local PostgreSQL, its
backends'), which other work on a shared machine does not stretch. Peak memory: how far
the process's resident memory rose above its level at the start of each run (sampled
every 5 ms; no tracing, which would slow the timed code), and the process's maximum RSS. PostgreSQL gets its own database, `billing_sync_bench_reconcile`,
so other benchmarks can run beside it. Writes bench-results/reconcile-<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path


from .databases import database_kinds, write_results
from sqlalchemy import text

from billing_sync import schema
from billing_sync.db import Database
from billing_sync.genesys.models import ConversationPlaybacks, PlaybackMetrics
from billing_sync.ledger import terminals
from billing_sync.ledger.rating import Tariff
from billing_sync.reconcile import Rules, reconcile

from .ingest import cpu_of, fresh_database

ROOT = Path(__file__).resolve().parent.parent
TARIFF = Tariff(Decimal("0.60"), "EUR")  # one cent per second: amount = seconds
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
PER_CONVERSATION = 10
PG_DATABASE = "billing_sync_bench_reconcile"

# i % 100 picks the case: 0 missing webhook, 1 missing stream, 2 state conflict, 3 webhook
# duration 6 s too long, 4 unbilled terminal, 5 orphan charge; the rest agree.
_FACTS = """
    {series},
    facts AS (
        SELECT i, {pid} AS playback_id, {cid} AS conversation_id, i % 100 AS k,
               10000 + (i % 50) * 1000 AS ms, {started} AS started_at, {ended} AS ended_at
        FROM series
    )
"""
_PLAYBACKS = """
    INSERT INTO playbacks (playback_id, conversation_id, state, last_sequence, duration_ms, media_url,
                           requested_by, started_at, ended_at, created_at, updated_at)
    {with_facts}
    SELECT playback_id, conversation_id, CASE WHEN k = 5 THEN 'started' ELSE 'completed' END, 2,
           CASE WHEN k = 5 THEN 0 ELSE ms END, NULL, NULL, started_at,
           CASE WHEN k = 5 THEN NULL ELSE ended_at END, started_at, started_at
    FROM facts
"""
_EVENTS = """
    INSERT INTO playback_events (source, source_event_id, playback_id, conversation_id, state, duration_ms,
                                 sequence, media_url, occurred_at, received_at, payload)
    {with_facts}
    SELECT '{source}', '{source}-' || playback_id, playback_id, conversation_id, {state}, {ms}, 2, NULL,
           ended_at, ended_at, '{{}}'
    FROM facts WHERE {where}
"""
_CHARGES = """
    INSERT INTO billing_records (idempotency_key, kind, playback_id, conversation_id, cause, duration_ms,
                                 billable_seconds, rate_per_minute, amount_minor, currency, provenance,
                                 corrects, ended_at, created_at)
    {with_facts}
    SELECT 'charge:' || playback_id || ':terminal', 'charge', playback_id, conversation_id, 'terminal',
           {ms}, {ms} / 1000, '0.60', {ms} / 1000, 'EUR', 'webhook', NULL, ended_at, ended_at
    FROM facts WHERE k NOT IN (0, 4)
"""
_ANALYTICS = """
    SELECT p.conversation_id, min(p.started_at), count(*),
           sum(CASE WHEN coalesce(s.state, w.state) = 'completed' THEN 1 ELSE 0 END),
           sum(coalesce(s.duration_ms, w.duration_ms))
    FROM playbacks p
    LEFT JOIN playback_events w ON w.source = 'webhook' AND w.source_event_id = 'webhook-' || p.playback_id
    LEFT JOIN playback_events s ON s.source = 'stream' AND s.source_event_id = 'stream-' || p.playback_id
    WHERE p.state <> 'started'
    GROUP BY p.conversation_id
    ORDER BY p.conversation_id
"""
_TERMINAL = "('completed', 'failed', 'stopped')"
# The fastest plain join of the same tables each database offers: PostgreSQL hashes a FULL
# OUTER JOIN; SQLite runs one without an index as nested loops, so its baseline is the
# same full join spelled as an indexed LEFT JOIN plus the anti-join of the other side.
BARE_JOIN = {
    "postgresql": f"""
        SELECT count(*), sum(coalesce(r.amount_minor, 0))
        FROM (SELECT playback_id, state, duration_ms FROM playback_events
              WHERE source = 'webhook' AND state IN {_TERMINAL}) w
        FULL OUTER JOIN (SELECT playback_id, state, duration_ms FROM playback_events
                         WHERE source = 'stream' AND state IN {_TERMINAL}) s
            ON s.playback_id = w.playback_id
        LEFT JOIN billing_records r ON r.playback_id = coalesce(w.playback_id, s.playback_id)
    """,
    "sqlite": f"""
        SELECT count(*), sum(coalesce(r.amount_minor, 0))
        FROM (SELECT w.playback_id AS playback_id, w.duration_ms AS w_ms, s.duration_ms AS s_ms
              FROM playback_events w
              LEFT JOIN playback_events s ON s.playback_id = w.playback_id AND s.source = 'stream'
                                             AND s.state IN {_TERMINAL}
              WHERE w.source = 'webhook' AND w.state IN {_TERMINAL}
              UNION ALL
              SELECT s.playback_id, NULL, s.duration_ms FROM playback_events s
              WHERE s.source = 'stream' AND s.state IN {_TERMINAL}
                AND NOT EXISTS (SELECT 1 FROM playback_events w WHERE w.playback_id = s.playback_id
                                AND w.source = 'webhook' AND w.state IN {_TERMINAL})) j
        LEFT JOIN billing_records r ON r.playback_id = j.playback_id
    """,
}


def _dialect_parts(kind: str, count: int) -> dict[str, str]:
    if kind == "postgresql":
        return {"series": f"WITH series AS (SELECT generate_series(0, {count - 1}) AS i)",
                "pid": "'pb-' || lpad(i::text, 8, '0')", "cid": f"'cv-' || lpad((i / {PER_CONVERSATION})::text, 8, '0')",
                "started": "timestamptz '2026-11-01 00:00:00+00' + (i / 4) * interval '1 second'",
                "ended": "timestamptz '2026-11-01 00:00:00+00' + (i / 4 + 10) * interval '1 second'"}
    return {"series": f"WITH RECURSIVE series(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM series WHERE i < {count - 1})",
            "pid": "'pb-' || printf('%08d', i)", "cid": f"'cv-' || printf('%08d', i / {PER_CONVERSATION})",
            "started": "strftime('%Y-%m-%d %H:%M:%S', '2026-11-01 00:00:00', '+' || (i / 4) || ' seconds') || '.000000'",
            "ended": "strftime('%Y-%m-%d %H:%M:%S', '2026-11-01 00:00:00', '+' || (i / 4 + 10) || ' seconds') || '.000000'"}


def generate(db: Database, kind: str, count: int) -> float:
    """Write the playbacks, their terminal events and charges with INSERT ... SELECT; seconds taken."""
    with_facts = _FACTS.format(**_dialect_parts(kind, count))
    webhook_ms = "CASE WHEN k = 3 THEN ms + 6000 ELSE ms END"
    statements = [
        _PLAYBACKS.format(with_facts=with_facts),
        _EVENTS.format(with_facts=with_facts, source="webhook", state="'completed'", ms=webhook_ms,
                       where="k NOT IN (0, 5)"),
        _EVENTS.format(with_facts=with_facts, source="stream", state="CASE WHEN k = 2 THEN 'stopped' ELSE 'completed' END",
                       ms="ms", where="k NOT IN (1, 5)"),
        _CHARGES.format(with_facts=with_facts, ms=webhook_ms),
        # What ingest keeps on each playback: its first terminal event per witness.
        terminals.FILL_FROM_EVENTS,
    ]
    if kind == "postgresql":  # psycopg reads % as a placeholder
        statements = [statement.replace("%", "%%") for statement in statements]
    started = time.perf_counter()
    with db.transaction() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    if kind == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # Marking the charged and copying the first terminals onto each playback rewrote
            # every row, in whatever order those joins produced: compact the table again, as the
            # event tables the bare join reads are, in id order, as ingest leaves it.
            connection.exec_driver_sql("CLUSTER playbacks USING pk_playbacks")
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


class GeneratedAnalytics:
    """Analytics derived from the generated ledger (stream-first), 1% of conversations one playback off."""

    def __init__(self, db: Database) -> None:
        with db.read() as session:
            rows = session.execute(text(_ANALYTICS)).all()
        self.conversations = tuple(
            ConversationPlaybacks(cid, _instant(start), int(n) + (1 if i % 100 == 7 else 0), int(done),
                                  int(ms) + (5000 if i % 100 == 7 else 0))
            for i, (cid, start, n, done, ms) in enumerate(rows))

    def conversation_playback_metrics(self, since, until) -> PlaybackMetrics:
        return PlaybackMetrics(since, until, self.conversations)


def _instant(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class PeakRss:
    """The process's resident memory sampled every 5 ms in a thread: its peak above the start.

    Unlike tracemalloc it adds nothing to the timed code's allocations, and it sees the
    driver's and SQLite's memory as well as Python's.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = self.peak = _rss_bytes()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth_mib(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class CpuClock:
    """CPU seconds a piece of work costs: this process's (SQLite runs in it) plus those of the
    PostgreSQL backends serving this database (read from /proc, so only for a local server).

    Other work on a shared machine stretches wall time, not CPU time: this is the steadier ratio.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def __enter__(self) -> CpuClock:
        self._start = time.process_time(), self._backends()
        return self

    def __exit__(self, *exc) -> None:
        own, backends = self._start
        self.seconds = time.process_time() - own
        for pid, seconds in self._backends().items():
            self.seconds += seconds - backends.get(pid, 0.0)

    def _backends(self) -> dict[int, float]:
        if self._db.dialect != "postgresql":
            return {}
        with self._db.engine.connect() as connection:
            pids = connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            )).scalars().all()
        return cpu_of(pids)


def timed_run(db: Database, analytics, until: datetime, rules: Rules) -> dict:
    with PeakRss() as memory, CpuClock(db) as cpu:
        started = time.perf_counter()
        result = reconcile(db, analytics, TARIFF, since=SINCE, until=until, rules=rules, actor="bench",
                           as_of=until + timedelta(days=1))
        elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 3), "cpu_s": round(cpu.seconds, 2), "rss_growth_mib": memory.growth_mib,
            "charged": result.charged, "adjusted": result.adjusted, "counts": result.counts, "steps": result.seconds}


def bare_join(db: Database) -> tuple[float, float, int]:
    """The baseline once: wall seconds, CPU seconds, rows."""
    with CpuClock(db) as cpu:
        started = time.perf_counter()
        with db.read() as session:
            rows, _ = session.execute(text(BARE_JOIN[db.dialect])).one()
        elapsed = time.perf_counter() - started
    return elapsed, cpu.seconds, rows


def run_one(kind: str, workdir: Path, args) -> dict:
    url = fresh_database(kind, workdir, args.postgres, name=PG_DATABASE)
    if kind == "postgresql":
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    db = Database.from_url(url)
    try:
        schema.upgrade(db.engine)
        generated_s = generate(db, kind, args.count)
        analytics = GeneratedAnalytics(db)
        until = SINCE + timedelta(seconds=args.count // 4 + 60)
        bare_join(db)  # warm the cache the same way for both
        # The baseline three times, around the runs: its median is what the runs are held against.
        joins = [bare_join(db)]
        compare = timed_run(db, analytics, until, Rules(heal_missing_webhook=False, heal_duration=False))
        joins.append(bare_join(db))
        full = timed_run(db, analytics, until, Rules())
        joins.append(bare_join(db))
    finally:
        db.dispose()
    join_s = statistics.median(seconds for seconds, _, _ in joins)
    join_cpu_s = statistics.median(cpu for _, cpu, _ in joins)
    return {"generate_s": round(generated_s, 1), "analytics_conversations": len(analytics.conversations),
            "bare_join_s": round(join_s, 3), "bare_join_cpu_s": round(join_cpu_s, 2),
            "bare_join_runs": [{"seconds": round(seconds, 3), "cpu_s": round(cpu, 2)} for seconds, cpu, _ in joins],
            "bare_join_rows": joins[0][2], "compare": compare, "reconcile": full,
            "compare_vs_join": round(compare["seconds"] / join_s, 2),
            "reconcile_vs_join": round(full["seconds"] / join_s, 2),
            "compare_vs_join_cpu": round(compare["cpu_s"] / join_cpu_s, 2),
            "reconcile_vs_join_cpu": round(full["cpu_s"] / join_cpu_s, 2),
            "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="playbacks to generate")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = database_kinds(args.postgres)
    if args.only:
        kinds = [k for k in kinds if k == args.only]
    results = {"settings": {"count": args.count}, "cpus": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            print(f"{kind}: generating {args.count} playbacks ...", file=sys.stderr)
            results["runs"][kind] = run_one(kind, Path(tmp), args)
    print(f"{args.count} playbacks, {os.cpu_count()} CPUs")
    print(f"{'database':<11} {'bare join s':>12} {'compare s':>10} {'x join':>7} {'reconcile s':>12} {'x join':>7}"
          f" {'x join (CPU)':>14} {'healed':>8} {'run RSS MiB':>12} {'max RSS MiB':>12}")
    for kind, run in results["runs"].items():
        healed = run["reconcile"]["charged"] + run["reconcile"]["adjusted"]
        peak = max(run["compare"]["rss_growth_mib"], run["reconcile"]["rss_growth_mib"])
        cpu = f"{run['compare_vs_join_cpu']} / {run['reconcile_vs_join_cpu']}"
        print(f"{kind:<11} {run['bare_join_s']:>12} {run['compare']['seconds']:>10} {run['compare_vs_join']:>7}"
              f" {run['reconcile']['seconds']:>12} {run['reconcile_vs_join']:>7} {cpu:>14} {healed:>8} {peak:>12}"
              f" {run['process_max_rss_mib']:>12}")
    for kind, run in results["runs"].items():
        for label in ("compare", "reconcile"):
            steps = run[label]["steps"]
            print(f"{kind} {label} steps, s: " + ", ".join(f"{step} {seconds}" for step, seconds in steps.items()))
    write_results(ROOT, f"reconcile-{args.count}", results)


if __name__ == "__main__":
    main()

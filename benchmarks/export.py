"""`scripts/bench export`: CSV export of a million ledger events against the database's own dump.

For each database (SQLite, and PostgreSQL when reachable): a fresh migrated database,
N event rows generated straight into it by SQL, then, interleaved and repeated, the same
rows in the same order dumped three ways, each as its own process:

  billing-sync   `billing-sync export --dataset events --format csv --since --until -o FILE`
  PostgreSQL     `psql -c "COPY (SELECT ...) TO STDOUT WITH CSV"` into a file
  SQLite         the `sqlite3` command-line shell, `.mode csv`, into a file

Wall time (median), peak RSS and CPU time (the child's own, from wait4; for psql that
leaves out the server's) are reported. Results print as a table and go to
bench-results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from .databases import postgres_reachable, write_results

from .ingest import ROOT, migrate, service_env

SINCE, UNTIL = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
COLUMNS = "id, occurred_at, conversation_id, playback_id, state, duration_ms, sequence, source, source_event_id, received_at"
WHERE = "occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01' ORDER BY occurred_at, id"
PG_DATABASE = "billing_sync_bench_export" + os.environ.get("BILLING_SYNC_BENCH_DB_SUFFIX", "")

_PG_SEED = """
INSERT INTO playback_events (source, source_event_id, playback_id, conversation_id, state, duration_ms,
                             sequence, media_url, occurred_at, received_at, payload)
SELECT 'webhook', md5(g::text), 'pb-' || (g / 3), 'conv-' || (g / 30),
       (ARRAY['started', 'progress', 'completed'])[g %% 3 + 1], (g %% 3) * 6000, g %% 3 + 1, NULL,
       timestamptz '2026-11-01' + g * interval '1 second' + (g %% 1000) * interval '1 microsecond',
       timestamptz '2026-11-01' + g * interval '1 second' + interval '150 milliseconds', '{}'::jsonb
FROM generate_series(1, %(rows)s) AS g
"""

# SQLAlchemy's SQLite DATETIME text ('YYYY-MM-DD HH:MM:SS.ffffff'), which the service writes too.
_SQLITE_SEED = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :rows)
INSERT INTO playback_events (source, source_event_id, playback_id, conversation_id, state, duration_ms,
                             sequence, media_url, occurred_at, received_at, payload)
SELECT 'webhook', lower(hex(randomblob(16))), 'pb-' || (n / 3), 'conv-' || (n / 30),
       CASE n % 3 WHEN 0 THEN 'started' WHEN 1 THEN 'progress' ELSE 'completed' END, (n % 3) * 6000, n % 3 + 1,
       NULL, strftime('%Y-%m-%d %H:%M:%S', '2026-11-01', '+' || n || ' seconds') || printf('.%06d', n % 1000),
       strftime('%Y-%m-%d %H:%M:%S', '2026-11-01', '+' || n || ' seconds') || '.150000', '{}'
FROM g
"""


def run_measured(argv: list[str], out: Path, env: dict | None = None) -> dict:
    """Run one process with stdout to `out`; its wall time and peak RSS."""
    with open(out, "wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def seed(kind: str, url: str, rows: int) -> float:
    started = time.perf_counter()
    if kind == "postgresql":
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(_PG_SEED, {"rows": rows})
            connection.execute("VACUUM ANALYZE playback_events")
    else:
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(_SQLITE_SEED, {"rows": rows})
            connection.execute("ANALYZE")
    return time.perf_counter() - started


def fresh_database(kind: str, workdir: Path, admin: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir}/export-bench.db"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {PG_DATABASE}")
    return f"{admin.rsplit('/', 1)[0]}/{PG_DATABASE}"


def baseline_argv(kind: str, url: str) -> list[str]:
    query = f"SELECT {COLUMNS} FROM playback_events WHERE {WHERE}"
    if kind == "postgresql":
        return ["psql", "-X", "-q", url, "-c", f"COPY ({query}) TO STDOUT WITH CSV"]
    return ["sqlite3", "-batch", "-cmd", ".mode csv", url.removeprefix("sqlite:///"), query]


def measure(kind: str, url: str, workdir: Path, rows: int, repeats: int) -> dict:
    env = service_env(url)
    ours_argv = [str(ROOT / ".venv" / "bin" / "billing-sync"), "export", "--dataset", "events", "--format", "csv",
                 "--since", SINCE, "--until", UNTIL, "-o", str(workdir / f"{kind}-ours.csv")]
    runs: dict[str, list[dict]] = {"database": [], "billing-sync": []}
    for _ in range(repeats):  # interleaved, so a noisy neighbour hurts both alike
        runs["database"].append(run_measured(baseline_argv(kind, url), workdir / f"{kind}-db.csv"))
        runs["billing-sync"].append(run_measured(ours_argv, workdir / "stdout.txt", env))
    lines = {"database": count_lines(workdir / f"{kind}-db.csv"),
             "billing-sync": count_lines(workdir / f"{kind}-ours.csv") - 1}  # less the header
    if set(lines.values()) != {rows}:
        raise RuntimeError(f"{kind}: row counts differ: {lines}, expected {rows}")
    summary = {name: {"seconds": round(statistics.median(r["seconds"] for r in results), 2),
                      "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
                      # the process's own CPU (for psql, not the server's)
                      "cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in results), 2),
                      "all_seconds": [round(r["seconds"], 2) for r in results]}
               for name, results in runs.items()}
    summary["ratio"] = round(summary["billing-sync"]["seconds"] / summary["database"]["seconds"], 2)
    summary["bytes"] = {"database": (workdir / f"{kind}-db.csv").stat().st_size,
                        "billing-sync": (workdir / f"{kind}-ours.csv").stat().st_size}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = []
    if args.only != "postgresql":
        if shutil.which("sqlite3"):
            kinds.append("sqlite")
        else:
            print("the sqlite3 command-line shell is not installed: SQLite skipped", file=sys.stderr)
    if args.only != "sqlite" and postgres_reachable(args.postgres):
        if shutil.which("psql"):
            kinds.append("postgresql")
        else:
            print("psql is not installed: PostgreSQL skipped", file=sys.stderr)
    results = {"settings": vars(args), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            url = fresh_database(kind, Path(tmp), args.postgres)
            migrate(service_env(url))
            seconds = seed(kind, url, args.rows)
            print(f"{kind}: {args.rows} events generated in {seconds:.1f} s", file=sys.stderr)
            results["runs"][kind] = measure(kind, url, Path(tmp), args.rows, args.repeats)
            if kind == "postgresql":
                with psycopg.connect(args.postgres, autocommit=True) as connection:
                    connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    print_table(results)
    write_results(ROOT, "export", results)


def print_table(results: dict) -> None:
    rows = results["settings"]["rows"]
    print(f"{'database':<11} {'dump':<14} {'seconds':>8} {'peak RSS MB':>12} {'vs database':>12}   ({rows} rows)")
    for kind, run in results["runs"].items():
        for name in ("database", "billing-sync"):
            shown = f"{run['ratio']:.2f}x" if name == "billing-sync" else ""
            label = {"postgresql": "COPY (psql)", "sqlite": "sqlite3 .mode csv"}[kind] if name == "database" else name
            print(f"{kind:<11} {label:<17} {run[name]['seconds']:>5} {run[name]['peak_rss_mb']:>12} {shown:>12}")


if __name__ == "__main__":
    main()

"""`scripts/bench ingest`: webhook ingest under gunicorn against a no-op Flask baseline.

For each database (SQLite, and PostgreSQL when reachable): a fresh migrated database,
gunicorn with the project's gunicorn.conf.py and 2 workers, wrk posting unique events
(single events, then batches of 100). The baseline is a no-op Flask endpoint served by
the same gunicorn settings, measured in the same run. Results print as a table and are
written to bench-results/ingest.json.

Each load also gets its CPU milliseconds per request, by who spent them: gunicorn (master
and workers, SQLite included), the PostgreSQL backends serving the bench database, and wrk.
On a machine where all three share the cores, requests/s follows their sum. From these
the last line derives, for PostgreSQL, the ceiling single-event ingest could reach against
the no-op if its app cost no more CPU than the no-op's: the no-op's app and wrk cost over
that same app cost plus ingest's database and wrk cost. (SQLite works inside the app.)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from .databases import database_kinds, write_results

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(app: str, env: dict[str, str], workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", app],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/webhooks/genesys", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def run_wrk(url: str, batch: int, seconds: int, connections: int, cpu: CpuUse | None = None) -> dict:
    env = dict(os.environ, BATCH=str(batch), AUTH=base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    started = cpu.read() if cpu else None
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(ROOT / "benchmarks" / "ingest.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    stats = json.loads(re.search(r"WRK_JSON (\{.*\})", output).group(1))
    seconds_run = stats["duration_us"] / 1e6
    ok = stats["requests"] - stats["non2xx"]
    result = {
        "requests_per_s": round(ok / seconds_run, 1),
        "events_per_s": round(ok * batch / seconds_run, 1),
        "p50_ms": round(stats["p50_us"] / 1000, 2),
        "p99_ms": round(stats["p99_us"] / 1000, 2),
        "errors": stats["errors"] + stats["non2xx"],
    }
    if cpu:
        spent = CpuUse.since(started, cpu.read())
        result["cpu_ms_per_request"] = {who: round(seconds * 1000 / max(stats["requests"], 1), 3)
                                        for who, seconds in spent.items()}
    return result


class CpuUse:
    """CPU seconds spent so far by gunicorn (master and workers), by the PostgreSQL backends
    of one database (read from /proc: a local server only; 0 for SQLite), and by finished
    child processes of this one (wrk: `run_wrk` waits for it)."""

    def __init__(self, gunicorn: subprocess.Popen, database_url: str) -> None:
        self._gunicorn = gunicorn.pid
        self._postgres = database_url if database_url.startswith("postgresql") else None

    def read(self) -> dict[str, dict[int, float]]:
        """Per group, each live process's CPU seconds (wrk's as process 0)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"app": cpu_of([self._gunicorn, *_children(self._gunicorn)]), "database": cpu_of(self._backends()),
                "wrk": {0: children.ru_utime + children.ru_stime}}

    @staticmethod
    def since(start: dict, end: dict) -> dict[str, float]:
        """CPU seconds per group between two reads, over the processes alive at the end (a
        worker recycled in between counts from zero; one gone is not counted)."""
        return {group: sum(seconds - start[group].get(pid, 0.0) for pid, seconds in end[group].items())
                for group in end}

    def _backends(self) -> list[int]:
        if not self._postgres:
            return []
        with psycopg.connect(self._postgres, autocommit=True) as connection:
            return [pid for (pid,) in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]


def cpu_of(pids) -> dict[int, float]:
    """CPU seconds of each of these processes still alive (`process_cpu_s`)."""
    return {pid: seconds for pid in pids if (seconds := process_cpu_s(pid)) is not None}


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def process_cpu_s(pid: int) -> float | None:
    """User and system CPU seconds of a live process, all its threads (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def fresh_database(kind: str, workdir: Path, postgres_admin: str | None, name: str = "billing_sync_bench") -> str:
    """A new empty database for one benchmark; each benchmark its own `name`, so they can run side by side.

    `BILLING_SYNC_BENCH_DB_SUFFIX` in the environment is added to the PostgreSQL name, so two
    checkouts can run the same benchmark at once without dropping each other's database.
    """
    name += os.environ.get("BILLING_SYNC_BENCH_DB_SUFFIX", "")
    if kind == "sqlite":
        return f"sqlite:///{workdir}/{name}.db"
    with psycopg.connect(postgres_admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    base = postgres_admin.rsplit("/", 1)[0]
    return f"{base}/{name}"


def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "GENESYS_"))}
    env.update(DATABASE_URL=database_url, BILLING_SYNC_WEBHOOK_USERNAME=USER,
               BILLING_SYNC_WEBHOOK_PASSWORD=PASSWORD, LOG_LEVEL="WARNING",
               BILLING_RATE_PER_MINUTE="0.60", BILLING_CURRENCY="EUR")
    return env


def measure(app: str, env: dict, args) -> dict:
    process, url = start_gunicorn(app, env, args.workers)
    cpu = CpuUse(process, env["DATABASE_URL"])
    try:
        run_wrk(url, 1, 2, args.connections)  # warm-up: connections, caches, JIT-free but still
        return {
            "single": run_wrk(url, 1, args.seconds, args.connections, cpu),
            "batch100": run_wrk(url, 100, args.seconds, args.connections, cpu),
        }
    finally:
        stop(process)


def migrate(env: dict) -> None:
    subprocess.run([str(ROOT / ".venv" / "bin" / "billing-sync"), "db", "upgrade"], env=env, check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    kinds = database_kinds(args.postgres)
    results = {"settings": vars(args), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            env = service_env(fresh_database(kind, Path(tmp), args.postgres))
            migrate(env)
            baseline = measure("benchmarks.noop_app:app", env, args)
            ingest = measure("wsgi:app", env, args)
            run = results["runs"][kind] = {"baseline": baseline, "ingest": ingest}
            if kind == "postgresql":  # SQLite works inside the app: there is no database process to count
                run["single_event_ceiling"] = round(single_event_ceiling(run), 3)
    print_table(results)
    write_results(ROOT, "ingest", results)


def print_table(results: dict) -> None:
    print(f"{'database':<11} {'load':<9} {'':<9} {'req/s':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs no-op':>9}"
          f"   CPU ms/request: app / database / wrk")
    for kind, run in results["runs"].items():
        for load in ("single", "batch100"):
            base, ingest = run["baseline"][load], run["ingest"][load]
            ratio = ingest["requests_per_s"] / base["requests_per_s"] if base["requests_per_s"] else 0
            for label, row, shown in (("no-op", base, ""), ("ingest", ingest, f"{ratio:.0%}")):
                cpu = row["cpu_ms_per_request"]
                print(f"{kind:<11} {load:<9} {label:<9} {row['requests_per_s']:>9} {row['events_per_s']:>10} "
                      f"{row['p50_ms']:>8} {row['p99_ms']:>8} {shown:>9}   {cpu['app']:.3f} / {cpu['database']:.3f}"
                      f" / {cpu['wrk']:.3f}" + (f"  ({row['errors']} errors)" if row["errors"] else ""))
    for kind, run in results["runs"].items():
        if "single_event_ceiling" in run:
            print(f"{kind}: single-event ingest at the no-op's app CPU would reach at most"
                  f" {run['single_event_ceiling']:.0%} of the no-op")


def single_event_ceiling(run: dict) -> float:
    """The single-event ratio ingest would have if its app cost the no-op's app CPU and
    nothing more: (no-op app + wrk) / (no-op app + ingest database + ingest wrk)."""
    base = run["baseline"]["single"]["cpu_ms_per_request"]
    ingest = run["ingest"]["single"]["cpu_ms_per_request"]
    return (base["app"] + base["wrk"]) / (base["app"] + ingest["database"] + ingest["wrk"])


if __name__ == "__main__":
    main()

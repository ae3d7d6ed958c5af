"""Which databases a benchmark runs on: SQLite always, PostgreSQL when it answers."""

from __future__ import annotations

import json
import os
import sys

import psycopg

DEFAULT_POSTGRES = os.environ.get("BILLING_SYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_reachable(url: str) -> bool:
    """True when PostgreSQL at `url` accepts a connection; says so on stderr when it does not."""
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        print(f"PostgreSQL not reachable at {url}: SQLite only", file=sys.stderr)
        return False


def database_kinds(url: str) -> list[str]:
    return ["sqlite", "postgresql"] if postgres_reachable(url) else ["sqlite"]


def write_results(root, name: str, results: dict) -> None:
    """Keep a run's figures as bench-results/<name>.json (git-ignored) and say where."""
    out = root / "bench-results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten to {out.relative_to(root)}")

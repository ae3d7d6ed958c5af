"""Which databases a benchmark runs on: SQLite always, PostgreSQL when it answers."""

from __future__ import annotations

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

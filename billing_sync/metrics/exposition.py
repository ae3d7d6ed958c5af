"""The body of GET /metrics: the web workers' own metrics, then the database's, in Prometheus text format."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..db import Database
from .database import DatabaseCollector
from .multiprocess import MULTIPROC_DIR_VARIABLE, shared_lock

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(db: Database) -> bytes:
    """Every metric once: the workers' (summed over all of gunicorn's workers) and the database's."""
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(db))
    return process_metrics() + generate_latest(database)


def process_metrics() -> bytes:
    """This process's metrics, or under gunicorn (`PROMETHEUS_MULTIPROC_DIR` set) every worker's, live or dead."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    # The master may be folding a dead worker's files into the archive: read between two folds.
    with shared_lock(directory):
        return generate_latest(registry)

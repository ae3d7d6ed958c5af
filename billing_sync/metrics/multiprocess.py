"""The multiprocess metrics directory under gunicorn: made or wiped at master start, tidied as workers die.

Every worker writes its counters and histograms to `<type>_<pid>.db` files in
`PROMETHEUS_MULTIPROC_DIR`; a scrape sums all of them. When a worker exits (crash,
`max_requests` recycling, shutdown) the master

- drops its live gauges (`mark_process_dead`: requests in flight count live workers only);
- folds its counters and histograms into `<type>_archive.db`, so totals never go down and a
  scrape reads a few files however many workers have come and gone.

gunicorn.conf.py imports this module before the app: prometheus-client is imported only
inside the functions, after `choose_directory` has set the variable it reads at import.

The fold happens under an exclusive lock on `metrics.lock` in the directory; a scrape
holds it shared, so it never sees a worker's counts twice or not at all.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LOCK_NAME = "metrics.lock"
PRIVATE_PREFIX = "billing-sync-metrics-"
# "<pid> <directory>": the master that made a private directory (and so removes it at exit).
OWNER_VARIABLE = "BILLING_SYNC_METRICS_DIR_OWNER"
ARCHIVED_TYPES = ("counter", "histogram")


def choose_directory(environ=os.environ) -> Path:
    """The directory named by PROMETHEUS_MULTIPROC_DIR (made if missing), or a new private one.

    Sets the variable, before anything imports prometheus-client: it picks file-backed
    values at import time, and the app is loaded (preloaded) after gunicorn's config. A
    private directory is this master's: the same one when the config is read again (HUP),
    a new one for a new master that inherited it (USR2 upgrade), removed at exit.
    """
    named = environ.get(MULTIPROC_DIR_VARIABLE)
    owner = environ.get(OWNER_VARIABLE, "")
    inherited_private = owner.partition(" ")[2] == named and owner != _owner_mark(named)
    if named and not inherited_private:
        path = Path(named)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    environ[MULTIPROC_DIR_VARIABLE] = str(path)
    environ[OWNER_VARIABLE] = _owner_mark(str(path))
    # Also when the master stops before gunicorn's on_exit (a configuration error at preload).
    atexit.register(remove_if_private, path, environ)
    return path


def wipe(directory: Path) -> None:
    """Empty the directory: a new master starts every count from zero (Prometheus sees a restart)."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_if_private(directory: Path, environ=os.environ) -> None:
    """Remove the directory at master exit when `choose_directory` made it here; leave an operator's alone."""
    if environ.get(OWNER_VARIABLE) == _owner_mark(str(directory)):
        shutil.rmtree(directory, ignore_errors=True)


def _owner_mark(directory: str | None) -> str:
    return f"{os.getpid()} {directory}"


def worker_exited(directory: Path, pid: int) -> None:
    """Drop a dead worker's live gauges and fold its counters and histograms into the archive."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, str(directory))
    with _lock(directory, fcntl.LOCK_EX):
        for kind in ARCHIVED_TYPES:
            own = directory / f"{kind}_{pid}.db"
            if own.exists():
                _fold(directory, kind, own)


def _fold(directory: Path, kind: str, own: Path) -> None:
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector

    archive = directory / f"{kind}_archive.db"
    sources = [str(path) for path in (archive, own) if path.exists()]
    merged = MultiProcessCollector.merge(sources, accumulate=False)
    # Written aside, then renamed over the archive: a crash here loses no count (the worker's file stays).
    staging = directory / f"{kind}_archive.staging"
    staging.unlink(missing_ok=True)
    values = MmapedDict(str(staging))
    try:
        for metric in merged:
            for sample in metric.samples:
                names, label_values = zip(*sorted(sample.labels.items())) if sample.labels else ((), ())
                key = mmap_key(metric.name, sample.name, list(names), list(label_values), metric.documentation)
                values.write_value(key, sample.value, 0.0)
    finally:
        values.close()
    os.replace(staging, archive)
    own.unlink()


@contextmanager
def shared_lock(directory: str | Path) -> Iterator[None]:
    """Held while reading the directory, so no fold happens under a scrape."""
    with _lock(Path(directory), fcntl.LOCK_SH):
        yield


@contextmanager
def _lock(directory: Path, mode: int) -> Iterator[None]:
    with open(directory / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

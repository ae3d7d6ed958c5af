"""gunicorn settings for the web process: `gunicorn -c gunicorn.conf.py wsgi:app`.

Each value below reads an environment variable first; any gunicorn setting can also be
given on the command line or in GUNICORN_CMD_ARGS (`--timeout 60`), which win over this
file. README's "Operations" section lists them.
"""

import multiprocessing
import os

from billing_sync.metrics import multiprocess as metrics_files

# Before the app is loaded (preload, below): prometheus-client picks per-worker metric files at import.
METRICS_DIR = metrics_files.choose_directory()


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.strip().isdigit():
        raise SystemExit(f"billing-sync: configuration error: {name} must be a whole number, got {value!r}")
    return int(value)


bind = os.environ.get("BILLING_SYNC_BIND", "127.0.0.1:8000")
# Ingest mostly waits on the database; concurrent requests in a worker share one commit
# (group commit), so a worker wants every connection it holds in flight at once: with too
# few threads the rest wait outside the group (8 threads: groups of ~2-4 and about 30% less
# single-event throughput than 32 under `scripts/bench ingest`). Two workers per core keep
# the cores busy while some threads wait.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2)
worker_class = "gthread"
threads = _int("BILLING_SYNC_THREADS", 32)
# Load the app once in the master: a configuration error stops start-up with one line.
preload_app = True
# A worker whose main loop is stuck this long is killed and replaced (gthread: requests run in
# threads, so a long streamed export does not count against it).
timeout = _int("BILLING_SYNC_TIMEOUT", 30)
# On SIGTERM workers stop accepting and finish what they hold for this long; Genesys redelivers the rest.
graceful_timeout = _int("BILLING_SYNC_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection stays open; above a load balancer's idle timeout if one is in front.
keepalive = _int("BILLING_SYNC_KEEPALIVE", 5)
# Genesys retries for 24 h; a worker recycled now and then keeps memory flat.
max_requests = _int("BILLING_SYNC_MAX_REQUESTS", 100_000)
max_requests_jitter = _int("BILLING_SYNC_MAX_REQUESTS_JITTER", 10_000)
# The worker heartbeat file on tmpfs: a busy disk cannot stall a worker into a timeout.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The app logs one JSON line per request (request id, method, route, status, duration), so
# gunicorn's access log is off. `--access-logfile -` turns it on with this format: what
# the app's line lacks (client, size, user agent), joined to it by the request id.
accesslog = os.environ.get("BILLING_SYNC_ACCESS_LOG") or None
access_log_format = ('{"request_id": "%({x-request-id}o)s", "remote": "%(h)s", "request": "%(r)s", '
                     '"status": %(s)s, "bytes": %(B)s, "duration_us": %(D)s, "user_agent": "%(a)s"}')
errorlog = "-"
# gunicorn 27's control socket lives at one path per user ($HOME/.gunicorn/gunicorn.ctl), so
# several masters on a host would share it; nothing here uses it (older releases ignore this).
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server):
    """A new master: every metric starts from zero."""
    metrics_files.wipe(METRICS_DIR)


def child_exit(server, worker):
    """A worker died or was recycled: drop its live gauges, keep its counts."""
    metrics_files.worker_exited(METRICS_DIR, worker.pid)


def on_exit(server):
    metrics_files.remove_if_private(METRICS_DIR)

"""gunicorn settings for the web process: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os

bind = os.environ.get("BILLING_SYNC_BIND", "127.0.0.1:8000")
# Ingest mostly waits on the database; concurrent requests in a worker share one commit
# (group commit), so a worker wants every connection it holds in flight at once: with too
# few threads the rest wait outside the group (8 threads: groups of ~2-4 and half the
# throughput of 32 under `scripts/bench ingest`).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("BILLING_SYNC_THREADS", 32))
# Load the app once in the master: a configuration error stops start-up with one line.
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
# Genesys retries for 24 h; a worker recycled now and then keeps memory flat.
max_requests = 100_000
max_requests_jitter = 10_000
# The app logs one JSON line per request with its request id; gunicorn's own access log would repeat it.
accesslog = None
errorlog = "-"

"""Prometheus metrics: what each web worker counts, what the database holds, and how gunicorn's workers add up.

- `instruments`: counters and histograms the web process updates as it answers requests;
  under gunicorn every worker writes them to its own files in `PROMETHEUS_MULTIPROC_DIR`.
- `database`: gauges and counters read from the database at scrape time (outbox,
  deliveries, stream listeners, reconciliation): true for every process on every host.
- `exposition`: the body of GET /metrics, both of the above in the text format.
- `multiprocess`: the directory's housekeeping, called from gunicorn.conf.py's hooks.
"""

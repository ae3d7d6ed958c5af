"""What the web process counts as it answers: requests, their latency, webhook events.

Each observation is an in-memory (or, under gunicorn, an mmap) add of a few microseconds.
Created at import: prometheus-client decides there, from `PROMETHEUS_MULTIPROC_DIR`,
whether values live in this process or in files every worker shares a directory of.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Ingest answers in milliseconds to a few hundred (a 500-event batch under load); the API
# and exports may take seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "unmatched"
# Anything else a client sends is "other": a label's values must stay few, whatever arrives.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

http_requests = Counter(
    "billing_sync_http_requests", "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
http_request_duration = Histogram(
    "billing_sync_http_request_duration_seconds",
    "Seconds from a request reaching the app to its answer, by route template and method "
    "(ingest latency: route=\"/webhooks/genesys\").",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
http_requests_in_flight = Gauge(
    "billing_sync_http_requests_in_flight", "Requests being handled now, summed over the live workers.",
    multiprocess_mode="livesum",
)
webhook_events = Counter(
    "billing_sync_webhook_events",
    "Playback events received by webhook and committed: accepted (new to the ledger) or duplicate (already known).",
    ["result"],
)


def request_started() -> None:
    http_requests_in_flight.inc()


def request_finished() -> None:
    http_requests_in_flight.dec()


_accepted = webhook_events.labels("accepted")
_duplicate = webhook_events.labels("duplicate")
# (route, method, status) → its counter and histogram children: `labels()` costs more than the add.
_request_children: dict[tuple[str, str, int], tuple] = {}


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency; `route` is the URL rule (None: no route matched)."""
    route = route or UNMATCHED_ROUTE
    method = method if method in HTTP_METHODS else "other"
    key = (route, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children.setdefault(
            key, (http_requests.labels(route, method, str(status)), http_request_duration.labels(route, method)))
    children[0].inc()
    children[1].observe(seconds)


def count_webhook_events(*, accepted: int, duplicates: int) -> None:
    """Count the events of one committed webhook delivery."""
    if accepted:
        _accepted.inc(accepted)
    if duplicates:
        _duplicate.inc(duplicates)

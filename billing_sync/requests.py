"""Per-request context: a request id (taken from `X-Request-ID` or made), one access-log line, request metrics.

Flask's hooks call the plain functions below; so does the webhook fast path
(`api.webhook_wsgi`), which answers its requests without Flask and must leave the same traces.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request

from .logs import get_logger
from .metrics import instruments

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("billing_sync.access")


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)


def begin(supplied_id: str) -> tuple[str, float]:
    """A request starts: count it in flight, bind its id to the log context; its id and start time."""
    instruments.request_started()
    request_id = supplied_id if _VALID_ID.match(supplied_id) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id, time.perf_counter()


def answered(rule: str | None, method: str, path: str, status: int, started: float) -> None:
    """A request has its answer: count it, observe its latency, write its access-log line."""
    elapsed_s = time.perf_counter() - started
    instruments.observe_request(rule, method, status, elapsed_s)
    log.info("request", method=method, path=path, status=status, duration_ms=round(elapsed_s * 1000, 2))


def end() -> None:
    """A request is over, answered or not."""
    instruments.request_finished()
    structlog.contextvars.clear_contextvars()


def _start() -> None:
    g.in_flight = True
    g.request_id, g.started = begin(request.headers.get(REQUEST_ID_HEADER, ""))


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    rule = request.url_rule
    answered(rule.rule if rule else None, request.method, request.path, response.status_code,
             g.get("started", time.perf_counter()))
    return response


def _teardown(_exc) -> None:
    if g.pop("in_flight", False):
        end()
    else:
        structlog.contextvars.clear_contextvars()

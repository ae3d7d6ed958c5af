"""Per-request context: a request id (taken from `X-Request-ID` or made), one access-log line, request metrics."""

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


def _start() -> None:
    instruments.request_started()
    g.in_flight = True
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = supplied if _VALID_ID.match(supplied) else uuid.uuid4().hex
    g.started = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    elapsed_s = time.perf_counter() - g.get("started", time.perf_counter())
    elapsed_ms = elapsed_s * 1000
    rule = request.url_rule
    instruments.observe_request(rule.rule if rule else None, request.method, response.status_code, elapsed_s)
    log.info(
        "request", method=request.method, path=request.path, status=response.status_code,
        duration_ms=round(elapsed_ms, 2),
    )
    return response


def _teardown(_exc) -> None:
    if g.pop("in_flight", False):
        instruments.request_finished()
    structlog.contextvars.clear_contextvars()

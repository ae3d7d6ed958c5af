"""Bearer-token checks, scopes, rate-limit counting and Genesys error bodies for every view."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import CODES_BY_STATUS, GenesysError
from ..platform import Platform
from ..tokens import Token

F = TypeVar("F", bound=Callable[..., Any])

ALLOWED_PER_MINUTE = 300
RETRY_AFTER_S = 1
_WINDOW = timedelta(minutes=1)


def platform() -> Platform:
    return current_app.extensions["sandbox"]


def json_body() -> Any:
    """The request's JSON body; a 400 when it is not JSON."""
    raw = request.get_data()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise GenesysError(400, "bad.request", "The request body is not valid JSON") from None


class RateCounter:
    """Counts API calls per token per sandbox minute, and every call for the Nth-call fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._windows: dict[str, tuple[datetime, int]] = {}

    def count(self, token: str, now: datetime, every: int | None) -> tuple[int, int, bool]:
        """Record one call: (count in window, seconds to reset, whether to answer 429)."""
        with self._lock:
            self._total += 1
            start, calls = self._windows.get(token, (now, 0))
            if now - start >= _WINDOW:
                start, calls = now, 0
            calls += 1
            self._windows[token] = (start, calls)
            reset = max(0, int((start + _WINDOW - now).total_seconds()))
            limited = every is not None and self._total % every == 0
            return calls, reset, limited


def requires(scope: str) -> Callable[[F], F]:
    """Authenticate the bearer token, apply the rate-limit fault, then check `scope`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            token = _authenticate()
            sandbox = platform()
            counter: RateCounter = current_app.extensions["sandbox_rate"]
            calls, reset, limited = counter.count(token.value, sandbox.clock.now(),
                                                  sandbox.faults.current().rate_limit_every)
            g.rate_headers = {"inin-ratelimit-count": str(calls),
                              "inin-ratelimit-allowed": str(ALLOWED_PER_MINUTE),
                              "inin-ratelimit-reset": str(reset)}
            if limited:
                raise GenesysError(
                    429, "too.many.requests.retry.after",
                    f"Rate limit exceeded the maximum. Retry the request in [{RETRY_AFTER_S}] seconds",
                    params={"retryAfter": str(RETRY_AFTER_S)},
                    headers={"Retry-After": str(RETRY_AFTER_S)})
            if scope not in token.scopes:
                raise GenesysError(
                    403, "missing.any.permissions",
                    f"Unable to perform the requested action. You must have at least one of "
                    f"the following scopes: {scope}", params={"scopes": scope})
            g.token = token
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def _authenticate() -> Token:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise GenesysError(401, "authentication.required")
    token = platform().tokens.lookup(header[7:].strip())
    if token is None:
        raise GenesysError(401, "bad.credentials")
    return token


def error_response(error: GenesysError) -> Response:
    response = jsonify(error.body(platform().random.context.uuid()))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def init_app(app: Flask) -> None:
    """Install the error handlers and the headers every response carries."""
    app.extensions["sandbox_rate"] = RateCounter()

    @app.errorhandler(GenesysError)
    def _genesys(error: GenesysError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        return error_response(GenesysError(status, CODES_BY_STATUS.get(status, "bad.request")))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        current_app.logger.exception("sandbox view failed")
        return error_response(GenesysError(500, "internal.server.error"))

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["ININ-Correlation-Id"] = platform().random.context.uuid()
        for name, value in (g.get("rate_headers") or {}).items():
            response.headers[name] = value
        return response

"""Typed errors for everything that goes wrong talking to Genesys Cloud (contract §3).

Every error carries what an operator needs to find the call in Genesys Cloud's own logs:
the HTTP status, Genesys's `code`, the `contextId`, the method and the path. None of them
ever carries a header, a token or a secret. `error_from_response` is the one place a
response becomes an error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

MAX_MESSAGE_CHARS = 500
# Permission and scope names look like `conversation:play` or `analytics:conversationDetail:view`.
_PERMISSION = re.compile(r"\b[A-Za-z]+(?::[A-Za-z*]+)+\b")


class GenesysError(Exception):
    """A Genesys Cloud call failed; base of every error this package raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        context_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.context_id = context_id
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = " ".join(part for part in (self.method, self.path) if part)
        facts = ", ".join(
            f"{name} {value}"
            for name, value in (("status", self.status), ("code", self.code), ("contextId", self.context_id))
            if value is not None
        )
        head = f"Genesys Cloud {where}: " if where else "Genesys Cloud: "
        return head + self.message + (f" ({facts})" if facts else "")


class BadRequest(GenesysError):
    """400: the request does not match what Genesys Cloud accepts."""


class Unauthorized(GenesysError):
    """401: bad client credentials, or a token Genesys Cloud no longer accepts."""


class Forbidden(GenesysError):
    """403: the OAuth client lacks a scope or permission; `missing` names them when the body does."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = (), **facts: Any) -> None:
        super().__init__(message, **facts)
        self.missing = missing


class NotFound(GenesysError):
    """404: no such conversation, webhook, channel or running playback."""


class Conflict(GenesysError):
    """409: the state does not allow it, e.g. `conversation.not.connected`."""


class RateLimited(GenesysError):
    """429 after every allowed try; `retry_after` is the last wait Genesys Cloud asked for."""

    def __init__(self, message: str, *, retry_after: float | None = None, **facts: Any) -> None:
        super().__init__(message, **facts)
        self.retry_after = retry_after


class ServerError(GenesysError):
    """5xx: Genesys Cloud failed (retried first when the request was safe to repeat)."""


class GenesysTimeout(GenesysError):
    """No answer in time; for a request that is not safe to repeat its outcome is unknown."""


class GenesysUnavailable(GenesysError):
    """Genesys Cloud could not be reached: DNS, refused connection, reset, TLS failure."""


class InvalidResponse(GenesysError):
    """A 2xx answer whose body lacks or mistypes a field this client relies on."""


_BY_STATUS: dict[int, type[GenesysError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_from_response(response: httpx.Response) -> GenesysError:
    """The typed error for a non-2xx response, with status, code, contextId, method and path."""
    body = _json_object(response)
    status = response.status_code
    facts: dict[str, Any] = {
        "status": status,
        # OAuth errors (§2) say `error`, API errors (§3) say `code`.
        "code": _text(body.get("code")) or _text(body.get("error")),
        "context_id": _text(body.get("contextId")) or response.headers.get("inin-correlation-id"),
        "method": response.request.method,
        "path": response.request.url.path,
    }
    message = _message(body, response)
    if status == 403:
        return Forbidden(message, missing=_missing_permissions(body, message), **facts)
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(response), **facts)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else GenesysError)
    return cls(message, **facts)


def retry_after_seconds(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """Seconds the `Retry-After` header asks for (delta or HTTP date), or None when absent or bad."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _message(body: dict[str, Any], response: httpx.Response) -> str:
    for key in ("message", "error_description", "description"):
        text = _text(body.get(key))
        if text:
            return text[:MAX_MESSAGE_CHARS]
    return response.reason_phrase or f"HTTP {response.status_code}"


def _missing_permissions(body: dict[str, Any], message: str) -> tuple[str, ...]:
    # Genesys names them in `messageParams` (missing.permissions) or only in the message text.
    found: list[str] = []
    params = body.get("messageParams")
    if isinstance(params, dict):
        for value in params.values():
            if isinstance(value, str):
                found.extend(_PERMISSION.findall(value))
            elif isinstance(value, list):
                found.extend(item for item in value if isinstance(item, str) and _PERMISSION.fullmatch(item))
    if not found and "missing" in message.lower():
        found.extend(_PERMISSION.findall(message.split("missing", 1)[-1]))
    return tuple(dict.fromkeys(found))

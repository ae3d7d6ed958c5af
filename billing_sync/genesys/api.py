"""What every group of endpoints needs from the client: one authorised call, and typed loading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from marshmallow import Schema, ValidationError

from ..validation import first_error
from .errors import InvalidResponse


class GenesysAPI:
    """Base of the endpoint groups; `GenesysClient` supplies `call` and the bases."""

    api_base: str
    playback_base: str

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        base: str | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one request with auth and retries; the 2xx response or a GenesysError."""
        raise NotImplementedError


def segment(value: str) -> str:
    """An id made safe to put in a path: an id with '/' or '..' must not reach another endpoint."""
    if not value:
        raise ValueError("an id must not be empty")
    return quote(value, safe="")


def load(schema: Schema, response: httpx.Response, *, many: bool = False) -> Any:
    """The typed value of a 2xx body; InvalidResponse names the first missing or bad field."""
    method, path = response.request.method, response.request.url.path
    try:
        body = response.json()
    except ValueError:
        raise InvalidResponse("answer is not JSON", status=response.status_code,
                              method=method, path=path) from None
    try:
        return schema.load(body, many=many)
    except ValidationError as error:
        field, message = first_error(error.normalized_messages())
        raise InvalidResponse(f"unexpected answer: {field}: {message}", status=response.status_code,
                              method=method, path=path) from None


def outgoing(schema: Schema, body: Any, *, many: bool = False) -> Any:
    """`body` checked against the schema before it is sent; ValueError names the bad field."""
    try:
        return schema.load(body, many=many)
    except ValidationError as error:
        field, message = first_error(error.normalized_messages())
        raise ValueError(f"invalid request body: {field}: {message}") from None

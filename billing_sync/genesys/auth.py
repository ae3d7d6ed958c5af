"""OAuth client-credentials tokens: fetched once, cached, refreshed one caller at a time (§2)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ..logs import get_logger
from ..validation import first_error
from .errors import InvalidResponse

# Refresh this long before Genesys Cloud would stop accepting the token.
EXPIRY_MARGIN_S = 60.0
log = get_logger("billing_sync.genesys.auth")


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and the monotonic time after which it must not be used."""

    value: str = field(repr=False)
    usable_until: float

    def __repr__(self) -> str:
        return f"AccessToken(value=<redacted>, usable_until={self.usable_until:.0f})"


class TokenResponseSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(load_default="bearer", validate=lambda v: v.lower() == "bearer")
    expires_in = fields.Integer(required=True, validate=validate.Range(min=1))


_token_response = TokenResponseSchema()


def parse_token_response(body: object) -> tuple[str, int]:
    """(access_token, expires_in) from a token answer; InvalidResponse names the bad field."""
    try:
        data = _token_response.load(body if isinstance(body, dict) else {})
    except ValidationError as error:
        path, message = first_error(error.normalized_messages())
        # The message names the field only: the body may hold the token itself.
        raise InvalidResponse(f"token response: {path}: {message}", method="POST", path="/oauth/token") from None
    return data["access_token"], data["expires_in"]


class TokenCache:
    """The current access token; `fetch` is called only when it is missing, stale or rejected.

    However many threads ask at once, one of them fetches and the others wait for its
    result (single flight). A caller whose token was rejected passes it back as `rejected`:
    the token is refreshed only if it is still the cached one, so N callers that all saw
    the same 401 cause one refresh, not N.
    """

    def __init__(self, fetch: Callable[[], tuple[str, int]], *, clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenCache(cached={self._token is not None}, fetches={self.fetches})"

    def get(self, *, rejected: str | None = None) -> str:
        """A usable token: the cached one, or a fresh one when stale or when it is `rejected`."""
        if self._still_good(self._token, rejected):
            return self._token.value  # type: ignore[union-attr]
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            if self._still_good(self._token, rejected):
                return self._token.value  # type: ignore[union-attr]
            return self._refresh()

    def refresh(self) -> str:
        """Drop the cached token and fetch a new one (e.g. before a stream reconnects)."""
        with self._lock:
            return self._refresh()

    def clear(self) -> None:
        """Forget the cached token."""
        with self._lock:
            self._token = None

    def _still_good(self, token: AccessToken | None, rejected: str | None) -> bool:
        return token is not None and token.value != rejected and self._clock() < token.usable_until

    def _refresh(self) -> str:
        self._token = None
        value, expires_in = self._fetch()
        self.fetches += 1
        # Short-lived tokens (tests, narrow grants) still get half their life.
        margin = min(EXPIRY_MARGIN_S, expires_in / 2)
        self._token = AccessToken(value=value, usable_until=self._clock() + expires_in - margin)
        log.info("genesys.token.fetched", expires_in=expires_in)
        return value

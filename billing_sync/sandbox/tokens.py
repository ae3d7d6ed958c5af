"""OAuth client credentials (contract §2): one client, its scopes, and the tokens it holds."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import Clock
from .randomness import SeededStream

ALL_SCOPES = ("conversation:play", "conversation:view", "webhook:write", "event:subscribe",
              "analytics:query")


class OAuthError(Exception):
    """A refused token request, answered with the login service's `{error, description}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "description": self.description,
                "error_description": self.description}


@dataclass(frozen=True)
class Token:
    value: str
    client_id: str
    scopes: frozenset[str]
    expires_at: datetime


def validate_scopes(scopes: object) -> tuple[str, ...]:
    """The scopes as a tuple; raises ValueError naming an unknown one."""
    if scopes is None:
        return ALL_SCOPES
    names = tuple(scopes)  # type: ignore[arg-type]
    unknown = [s for s in names if s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; known: {', '.join(ALL_SCOPES)}")
    return names


class TokenIssuer:
    """Checks client credentials, issues bearer tokens and looks them up."""

    def __init__(self, *, client_id: str, client_secret: str, scopes: tuple[str, ...],
                 ttl_s: int, clock: Clock, tokens: SeededStream) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = frozenset(scopes)
        self.ttl_s = ttl_s
        self._clock = clock
        self._random = tokens
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, authorization: str | None, form: dict[str, str]) -> Token:
        """Answer POST /oauth/token; raises OAuthError."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type",
                             "grant_type must be client_credentials")
        client_id, secret = _credentials(authorization, form)
        if not (hmac.compare_digest(client_id.encode(), self._client_id.encode())
                and hmac.compare_digest(secret.encode(), self._client_secret.encode())):
            raise OAuthError(401, "invalid_client", "authentication failed")
        token = Token(value=self._random.token(), client_id=client_id, scopes=self._scopes,
                      expires_at=self._clock.now() + timedelta(seconds=self.ttl_s))
        with self._lock:
            self._forget_expired()
            self._tokens[token.value] = token
        return token

    def lookup(self, value: str) -> Token | None:
        """The live token with this value, or None when unknown or expired."""
        with self._lock:
            token = self._tokens.get(value)
        if token is None or token.expires_at <= self._clock.now():
            return None
        return token

    def _forget_expired(self) -> None:
        now = self._clock.now()
        for value in [v for v, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[value]


def _credentials(authorization: str | None, form: dict[str, str]) -> tuple[str, str]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(401, "invalid_client", "malformed basic credentials") from None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    if form.get("client_id"):
        return form["client_id"], form.get("client_secret", "")
    raise OAuthError(401, "invalid_client", "client credentials are required")

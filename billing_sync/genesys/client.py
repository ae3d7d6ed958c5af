"""`GenesysClient`: one authorised, rate-limit-aware HTTP client for a Genesys Cloud org.

Synchronous on purpose: Flask views and the CLI call it directly, and the async stream
calls it through `asyncio.to_thread`, so auth, retries and error mapping exist once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..logs import get_logger
from .analytics import AnalyticsAPI
from .auth import TokenCache, parse_token_response
from .conversations import ConversationsAPI
from .errors import GenesysTimeout, GenesysUnavailable, InvalidResponse, error_from_response, retry_after_seconds
from .notifications import NotificationsAPI
from .webhooks import WebhooksAPI

if TYPE_CHECKING:
    from ..config import Settings

# Methods whose repetition cannot do anything twice (RFC 9110 idempotent methods we use).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
USER_AGENT = "billing-sync/0.1 (+genesys client)"
log = get_logger("billing_sync.genesys.client")


class GenesysClient(ConversationsAPI, WebhooksAPI, NotificationsAPI, AnalyticsAPI):
    """A Genesys Cloud org as typed calls: conversations, playback, webhooks, channels, analytics.

    One `httpx.Client` (keep-alive) and one token cache per instance; share the instance
    between threads. Close it (or use it as a context manager) when done.
    """

    def __init__(
        self,
        *,
        api_base: str,
        login_base: str,
        client_id: str,
        client_secret: str,
        playback_base: str | None = None,
        timeout_s: float = 10.0,
        max_tries: int = 5,
        max_retry_after_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.api_base = api_base.rstrip("/")
        self.login_base = login_base.rstrip("/")
        self.playback_base = (playback_base or api_base).rstrip("/")
        self.timeout_s = timeout_s
        self.max_tries = max_tries
        self.max_retry_after_s = max_retry_after_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._client_id = client_id
        self._client_secret = client_secret
        self._sleep = sleep
        self._random = rng or random.Random()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        self._tokens = TokenCache(self._fetch_token, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> GenesysClient:
        """A client for the org Settings name; ConfigError when its credentials are missing."""
        settings.require("genesys_client_id", "genesys_client_secret")
        hosts = settings.genesys_hosts
        return cls(
            api_base=hosts.api_base,
            login_base=hosts.login_base,
            playback_base=settings.genesys_playback_base_url,
            client_id=settings.genesys_client_id,
            client_secret=settings.genesys_client_secret,
            **options,
        )

    def __repr__(self) -> str:
        return f"GenesysClient(api_base={self.api_base!r}, client_id={self._client_id!r})"

    def __enter__(self) -> GenesysClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def refresh_token(self) -> None:
        """Fetch a new access token now, whatever the cached one's age (stream reconnects)."""
        self._tokens.refresh()

    @property
    def token_fetches(self) -> int:
        """How many tokens this client has fetched (observability and tests)."""
        return self._tokens.fetches

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
        """Send one API request with a bearer token; the 2xx response or a typed GenesysError.

        A 401 drops the token, fetches a new one and retries once. 429 waits `Retry-After`.
        502/503/504, timeouts and connection errors are retried only when `idempotent`
        (default: the method is GET, HEAD, PUT or DELETE).
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = (base or self.api_base) + path
        token = self._tokens.get()
        response = self._send(method, url, safe=safe, json=json, params=params,
                              headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            # Revoked or expired early: one fresh token, one more try, then Unauthorized.
            log.info("genesys.token.rejected", method=method, path=path)
            token = self._tokens.get(rejected=token)
            response = self._send(method, url, safe=safe, json=json, params=params,
                                  headers={"Authorization": f"Bearer {token}"})
        return self._checked(response)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1`: capped exponential, jittered over its upper half."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def _fetch_token(self) -> tuple[str, int]:
        response = self._send(
            "POST", f"{self.login_base}/oauth/token", safe=True,
            data={"grant_type": "client_credentials"},
            auth=httpx.BasicAuth(self._client_id, self._client_secret),
        )
        response = self._checked(response)
        try:
            body = response.json()
        except ValueError:
            raise InvalidResponse("token answer is not JSON", status=response.status_code,
                                  method="POST", path="/oauth/token") from None
        return parse_token_response(body)

    def _send(self, method: str, url: str, *, safe: bool, **request: Any) -> httpx.Response:
        """The response after retrying 429 always, and 5xx and transport failures when `safe`."""
        path = httpx.URL(url).path
        for attempt in range(1, self.max_tries + 1):
            last_try = attempt == self.max_tries
            try:
                response = self._http.request(method, url, **request)
            except httpx.TimeoutException as error:
                if (safe or _never_sent(error)) and not last_try:
                    self._wait(self.backoff(attempt), method, path, attempt, type(error).__name__)
                    continue
                outcome = "" if safe else "; it may or may not have taken effect"
                raise GenesysTimeout(f"no answer within {self.timeout_s:g} s{outcome}",
                                     method=method, path=path) from None
            except httpx.TransportError as error:
                if (safe or _never_sent(error)) and not last_try:
                    self._wait(self.backoff(attempt), method, path, attempt, type(error).__name__)
                    continue
                raise GenesysUnavailable(f"cannot reach Genesys Cloud ({type(error).__name__})",
                                         method=method, path=path) from None
            if last_try:
                return response
            if response.status_code == 429:
                self._wait(self._rate_limit_delay(response, attempt), method, path, attempt, 429)
                continue
            if response.status_code in RETRYABLE_STATUSES and safe:
                self._wait(self.backoff(attempt), method, path, attempt, response.status_code)
                continue
            return response
        raise AssertionError("unreachable: the last try returns or raises")

    def _rate_limit_delay(self, response: httpx.Response, attempt: int) -> float:
        asked = retry_after_seconds(response)
        delay = self.backoff(attempt) if asked is None else asked
        return min(delay, self.max_retry_after_s)

    def _wait(self, delay: float, method: str, path: str, attempt: int, cause: object) -> None:
        log.warning("genesys.retry", method=method, path=path, attempt=attempt, cause=cause,
                    delay_s=round(delay, 3))
        self._sleep(delay)

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if 200 <= response.status_code < 300:
            return response
        raise error_from_response(response)


def _never_sent(error: httpx.TransportError) -> bool:
    """The connection was never made, so the request cannot have taken effect: safe to retry."""
    return isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))

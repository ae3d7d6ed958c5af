"""Posting signed messages to the billing system: bounded concurrency over keep-alive connections."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from .outbox import Attempt, Message
from .retry import RETRY_AFTER_STATUSES, parse_retry_after
from .signing import Signer

USER_AGENT = "billing-sync-dispatcher/1"


class Deliverer:
    """Sends messages with at most `concurrency` requests in flight, on one pooled httpx client."""

    def __init__(self, url: str, signer: Signer, *, concurrency: int = 16, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self._signer = signer
        self._client = httpx.Client(
            timeout=timeout_s, transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="deliver")

    def deliver(self, messages: list[Message], stop: threading.Event) -> tuple[list[Attempt], list[Message]]:
        """Attempt each message once; stop starting new ones once `stop` is set.

        Returns the attempts made (every one started is finished) and the messages not started.
        """
        futures = [self._pool.submit(self._attempt_unless_stopped, message, stop) for message in messages]
        attempts, unstarted = [], []
        for message, future in zip(messages, futures, strict=True):
            attempt = future.result()
            if attempt is None:
                unstarted.append(message)
            else:
                attempts.append(attempt)
        return attempts, unstarted

    def _attempt_unless_stopped(self, message: Message, stop: threading.Event) -> Attempt | None:
        return None if stop.is_set() else self.attempt(message)

    def attempt(self, message: Message) -> Attempt:
        """POST one message, signed afresh; any failure to get an answer is an Attempt with an error."""
        headers = self._signer.headers(message.message_id, message.payload)
        try:
            response = self._client.post(self._url, content=message.payload.encode(), headers=headers)
        except httpx.HTTPError as error:
            return Attempt(message, None, f"{type(error).__name__}: {error}")
        retry_after = None
        if response.status_code in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Attempt(message, response.status_code, None, retry_after)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

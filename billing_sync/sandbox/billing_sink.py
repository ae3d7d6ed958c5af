"""The billing sink: a stand-in billing system that verifies Standard Webhooks signatures,
dedupes on `webhook-id` and can be told to fail for a while."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .faults import FaultSettings

RETRY_AFTER_S = 1
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass
class Receipt:
    """What the sink holds for one webhook-id (or one unsigned request)."""

    webhook_id: str | None
    payload: Any
    verified: bool
    attempts: int = 1

    def view(self) -> dict[str, Any]:
        return {"webhook_id": self.webhook_id, "payload": self.payload,
                "verified": self.verified, "attempts": self.attempts}


@dataclass(frozen=True)
class SinkAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class BillingSink:
    """Receives signed billing records; thread-safe."""

    def __init__(self, secrets: Iterable[str], faults: FaultSettings) -> None:
        self._verifiers = [Webhook(s.strip()) for s in secrets if s.strip()]
        self._faults = faults
        self._receipts: list[Receipt] = []
        self._by_id: dict[str, Receipt] = {}
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def receive(self, body: bytes, headers: Mapping[str, str]) -> SinkAnswer:
        """Handle one POST: verify, then fail on purpose or record (once per webhook-id)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = lowered.get("webhook-id") or None
        with self._lock:
            if webhook_id:
                self._attempts[webhook_id] = self._attempts.get(webhook_id, 0) + 1
            attempts = self._attempts.get(webhook_id, 1) if webhook_id else 1
            problem = self._verify(body, lowered)
            if problem is not None:
                self._record(webhook_id, _payload(body), verified=False, attempts=attempts)
                status = 400 if problem == "missing" else 401
                return SinkAnswer(status, {"error": f"signature {problem}"}, {})
            failure = self._faults.billing_failure()
            if failure is not None:
                headers_out = {"Retry-After": str(RETRY_AFTER_S)} if failure in (429, 503) else {}
                return SinkAnswer(failure, {"error": "billing system failing on purpose"},
                                  headers_out)
            duplicate = webhook_id in self._by_id and self._by_id[webhook_id].verified
            self._record(webhook_id, _payload(body), verified=True, attempts=attempts)
            return SinkAnswer(200, {"received": True, "duplicate": duplicate}, {})

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.view() for r in self._receipts]

    def _verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when a configured secret signed this body, else why not."""
        if not all(headers.get(h) for h in SIGNATURE_HEADERS):
            return "missing"
        for verifier in self._verifiers:
            try:
                verifier.verify(body, headers, json_parse=False)
                return None
            except (WebhookVerificationError, ValueError):
                continue
        return "invalid"

    def _record(self, webhook_id: str | None, payload: Any, *, verified: bool,
                attempts: int) -> None:
        receipt = self._by_id.get(webhook_id) if webhook_id else None
        if receipt is None:
            receipt = Receipt(webhook_id, payload, verified, attempts)
            self._receipts.append(receipt)
            if webhook_id:
                self._by_id[webhook_id] = receipt
            return
        receipt.attempts = attempts
        if verified and not receipt.verified:
            receipt.verified, receipt.payload = True, payload


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")

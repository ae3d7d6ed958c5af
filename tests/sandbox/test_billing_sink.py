"""The billing sink: Standard Webhooks verification, dedupe and the failure window."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx

from billing_sync.sandbox import ManualClock
from billing_sync.sandbox.testing import running_sandbox

SECRET = "whsec_" + base64.b64encode(b"billing-sink-test-secret-0123456").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-previous-secret-before-rota").decode()


def signed(body: bytes, webhook_id: str, secret: str = SECRET) -> dict[str, str]:
    """Sign as the Standard Webhooks spec says, independently of the sandbox's verifier."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": webhook_id, "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
            "Content-Type": "application/json"}


def record(n: int) -> bytes:
    return json.dumps({"type": "billing.record.created", "data": {"id": n}}).encode()


def test_verifies_and_dedupes():
    with running_sandbox(billing_secrets=(SECRET, OLD_SECRET)) as sandbox:
        url = f"{sandbox.base_url}/sandbox/billing"
        body = record(1)
        first = httpx.post(url, content=body, headers=signed(body, "msg_1"))
        assert first.status_code == 200 and first.json()["duplicate"] is False
        again = httpx.post(url, content=body, headers=signed(body, "msg_1"))
        assert again.status_code == 200 and again.json()["duplicate"] is True
        other = record(2)
        assert httpx.post(url, content=other,
                          headers=signed(other, "msg_2", OLD_SECRET)).status_code == 200
        received = httpx.get(url).json()["received"]
        assert received == [
            {"webhook_id": "msg_1", "payload": json.loads(body), "verified": True, "attempts": 2},
            {"webhook_id": "msg_2", "payload": json.loads(other), "verified": True, "attempts": 1},
        ]


def test_unsigned_and_badly_signed_are_refused_and_recorded():
    with running_sandbox(billing_secrets=(SECRET,)) as sandbox:
        url = f"{sandbox.base_url}/sandbox/billing"
        body = record(3)
        assert httpx.post(url, content=body).status_code == 400
        wrong = signed(body, "msg_3", OLD_SECRET)
        assert httpx.post(url, content=body, headers=wrong).status_code == 401
        tampered = signed(body, "msg_4")
        assert httpx.post(url, content=record(4), headers=tampered).status_code == 401
        received = httpx.get(url).json()["received"]
        assert [r["verified"] for r in received] == [False, False, False]
        assert [r["webhook_id"] for r in received] == [None, "msg_3", "msg_4"]


def test_failure_window_then_healthy():
    clock = ManualClock()
    with running_sandbox(billing_secrets=(SECRET,), clock=clock) as sandbox:
        url = f"{sandbox.base_url}/sandbox/billing"
        faults = {"billing_fail_status": 503, "billing_fail_for_s": 30}
        assert httpx.put(f"{sandbox.base_url}/sandbox/faults", json=faults).status_code == 200
        body = record(5)
        failing = httpx.post(url, content=body, headers=signed(body, "msg_5"))
        assert failing.status_code == 503 and failing.headers["Retry-After"] == "1"
        assert httpx.get(url).json()["received"] == []
        clock.advance(31)
        ok = httpx.post(url, content=body, headers=signed(body, "msg_5"))
        assert ok.status_code == 200
        assert httpx.get(url).json()["received"][0]["attempts"] == 2
        httpx.put(f"{sandbox.base_url}/sandbox/faults",
                  json={"billing_fail_status": 410, "billing_fail_for_s": None})
        clock.advance(10_000)
        gone = httpx.post(url, content=record(6), headers=signed(record(6), "msg_6"))
        assert gone.status_code == 410 and "Retry-After" not in gone.headers

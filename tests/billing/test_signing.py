"""Standard Webhooks signatures: the reference verifier accepts ours, rotation signs twice."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing_sync.billing.retry import RetryPolicy, parse_retry_after
from billing_sync.billing.signing import Signer

from .conftest import NEXT_SECRET, SECRET

BODY = '{"type":"billing.record.created","timestamp":"2026-11-24T02:00:03+00:00","data":{"id":1}}'


def test_the_reference_verifier_accepts_our_signature():
    headers = Signer([SECRET]).headers("charge:pb-1:terminal", BODY)
    assert headers["webhook-id"] == "charge:pb-1:terminal"
    assert Webhook(SECRET).verify(BODY.encode(), headers) == {"type": "billing.record.created",
                                                              "timestamp": "2026-11-24T02:00:03+00:00",
                                                              "data": {"id": 1}}


def test_the_signature_is_the_spec_hmac_over_id_timestamp_and_body():
    moment = datetime(2026, 11, 24, 2, 0, 3, tzinfo=UTC)
    headers = Signer([SECRET], clock=lambda: moment).headers("msg_1", BODY)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = hmac.new(key, f"msg_1.{int(moment.timestamp())}.{BODY}".encode(), hashlib.sha256).digest()
    assert headers["webhook-timestamp"] == str(int(moment.timestamp()))
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_rotation_sends_one_signature_per_secret_each_verifying_alone():
    headers = Signer([SECRET, NEXT_SECRET]).headers("msg_2", BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (SECRET, NEXT_SECRET):
        Webhook(secret).verify(BODY.encode(), headers)
    stranger = "whsec_" + base64.b64encode(b"a-secret-nobody-configured-here!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY.encode(), headers)


def test_a_tampered_body_or_a_stale_timestamp_fails_verification():
    headers = Signer([SECRET]).headers("msg_3", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace('"id":1', '"id":2').encode(), headers)
    stale = Signer([SECRET], clock=lambda: datetime.now(UTC) - timedelta(minutes=10)).headers("msg_3", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.encode(), stale)


SCHEDULE = (0, 5, 300, 1800)


@pytest.mark.parametrize(("status", "attempts", "retry_after", "expected"), [
    (200, 1, None, ("delivered", None)),
    (204, 4, None, ("delivered", None)),
    (410, 1, None, ("dead", None)),
    (500, 1, None, ("pending", 5)),
    (None, 2, None, ("pending", 300)),       # no answer (timeout): the schedule
    (400, 3, None, ("pending", 1800)),
    (500, 4, None, ("dead", None)),          # schedule exhausted
    (429, 1, 60.0, ("pending", 60)),         # Retry-After longer than the schedule: honoured
    (503, 2, 1.0, ("pending", 300)),         # shorter: never sooner than the schedule
    (503, 1, 10**9, ("pending", 86_400)),    # absurd: capped at a day
    (500, 1, 60.0, ("pending", 5)),          # only 429 and 503 carry Retry-After
    (503, 4, 1.0, ("dead", None)),
])
def test_retry_decisions(status, attempts, retry_after, expected):
    decision = RetryPolicy(SCHEDULE, jitter=lambda delay: delay).decide(
        status=status, attempts=attempts, retry_after_s=retry_after)
    assert (decision.status, decision.delay_s) == expected


def test_jitter_only_ever_delays():
    policy = RetryPolicy(SCHEDULE)
    delays = {policy.decide(status=500, attempts=1).delay_s for _ in range(200)}
    assert all(5 <= d <= 6 for d in delays) and len(delays) > 1


def test_retry_after_seconds_and_http_dates():
    now = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Tue, 24 Nov 2026 02:01:30 GMT", now=now) == 90
    assert parse_retry_after("Tue, 24 Nov 2026 01:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None

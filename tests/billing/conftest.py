"""Billing fixtures: a tariff in the settings, the sandbox billing sink, charged playbacks."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from billing_sync.billing.delivery import Deliverer
from billing_sync.billing.retry import RetryPolicy
from billing_sync.billing.signing import Signer
from billing_sync.config import Settings
from billing_sync.models import OutboxMessage
from billing_sync.sandbox.testing import running_sandbox
from billing_sync.workers.dispatcher import DispatchOptions, Dispatcher

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..e2e.conftest import BILLING_SYNC, service_env

SECRET = "whsec_" + base64.b64encode(b"billing-sync-test-secret-32bytes").decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"the-next-secret-after-rotation!!").decode()
# Compressed: every retry 50 ms after the last, 40 attempts in all.
FAST_SCHEDULE = (0.0, *([0.05] * 39))


@pytest.fixture
def settings(database_url):
    return Settings(
        database_url=database_url, webhook_username=WEBHOOK_USER, webhook_password=WEBHOOK_PASSWORD,
        billing_rate_per_minute=Decimal("0.60"), billing_currency="USD",
        billing_webhook_secret=(SECRET,), billing_retry_schedule=FAST_SCHEDULE,
    )


@pytest.fixture
def sink():
    """The sandbox's billing sink over real HTTP, verifying with SECRET."""
    with running_sandbox(billing_secrets=(SECRET,)) as sandbox:
        yield Sink(sandbox.base_url)


class Sink:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/sandbox/billing"

    def received(self) -> list[dict]:
        return httpx.get(self.url).json()["received"]

    def fail(self, status: int | None, for_s: float | None = None) -> None:
        faults = {"billing_fail_status": status, "billing_fail_for_s": for_s}
        assert httpx.put(f"{self.base_url}/sandbox/faults", json=faults).status_code == 200


def charge(client, webhook_auth, events, count: int, *, duration: int = 12_000) -> list[str]:
    """`count` playbacks that completed, posted as real webhooks (each one terminal event)."""
    bodies = [events.event(state="completed", sequence=3, duration=duration, conversation_id=f"conv-{n % 7}")
              for n in range(count)]
    for start in range(0, count, 500):
        response = client.post("/webhooks/genesys", json=bodies[start:start + 500], headers=webhook_auth)
        assert response.status_code == 200, response.get_json()
    return [body["playbackId"] for body in bodies]


def dispatcher(db, settings, sink, *, concurrency: int = 8, batch_size: int = 50, **kwargs) -> Dispatcher:
    options = DispatchOptions(batch_size=batch_size, concurrency=concurrency, lease_s=30, timeout_s=5,
                              idle_poll_s=0.02)
    deliverer = Deliverer(sink.url, Signer(settings.billing_webhook_secret), concurrency=concurrency,
                          timeout_s=5)
    policy = kwargs.pop("policy", None) or RetryPolicy(settings.billing_retry_schedule, jitter=lambda d: d)
    return Dispatcher(db, deliverer, policy, options=options, **kwargs)


def outbox_counts(db) -> dict[str, int]:
    with db.read() as session:
        return dict(session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def run_until_settled(dispatch: Dispatcher, db, *, timeout_s: float = 60) -> None:
    """Run the dispatcher in a thread until no message is pending (fails after `timeout_s`)."""
    stop = threading.Event()
    thread = threading.Thread(target=dispatch.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while outbox_counts(db).get("pending", 0):
            assert thread.is_alive(), "the dispatcher stopped with messages pending"
            assert time.monotonic() < deadline, f"messages still pending: {outbox_counts(db)}"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)


def dispatcher_env(database_url: str, sink_url: str, **extra: str) -> dict[str, str]:
    return service_env(database_url, BILLING_WEBHOOK_URL=sink_url, BILLING_WEBHOOK_SECRET=SECRET,
                       BILLING_RETRY_SCHEDULE=",".join(map(str, FAST_SCHEDULE)), **extra)


def start_dispatcher(database_url: str, sink_url: str, cwd: Path, *args: str) -> subprocess.Popen:
    """A real `billing-sync dispatch` process."""
    return subprocess.Popen([str(BILLING_SYNC), "dispatch", *args], cwd=cwd,
                            env=dispatcher_env(database_url, sink_url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

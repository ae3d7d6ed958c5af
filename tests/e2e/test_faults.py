"""Proof under faults: the whole stack as real processes, every sandbox fault on, crashes mid-load.

The sandbox org (`billing-sync sandbox`, with its billing sink), gunicorn with 2 workers,
`billing-sync dispatch` and `billing-sync stream` run as processes. While scripted calls
play media through the service's API and behind its back, with webhooks dropped,
duplicated, delayed and reordered, every 7th Genesys API call answered 429, stream sockets
dropped or closed for maintenance and analytics lagging, the test kills (-9) a gunicorn
worker, the dispatcher and the stream worker, each at a point of progress rather than a
time, restarts the two workers as a supervisor would, and takes the billing sink down (503)
for a stretch.

Once traffic ends and everything drains, one `billing-sync reconcile` runs and the
dispatcher delivers its heals. Then the billing sink holds exactly the sandbox's truth: per
playback a witness reported, its duration and amount (charges + adjustments), charged
once; each billing record under one `webhook-id`, accepted once; playbacks both witnesses
lost are open discrepancies; and `billing-sync audit verify` passes.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_sync.genesys.client import GenesysClient
from billing_sync.ledger.events import TERMINAL_STATES
from billing_sync.ledger.rating import Tariff
from billing_sync.models import Discrepancy, OutboxMessage, PlaybackEvent, StreamListener
from billing_sync.sandbox.delivery import REORDER_HOLD_MS
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET

from ..billing.conftest import SECRET, Sink
from ..conftest import make_settings
from ..control_fixtures import MEDIA_HOST
from ..genesys.sandbox_helpers import SandboxControl, wait_until
from .call_load import Admin, CallScripts, media
from .conftest import BILLING_SYNC, Gunicorn, SandboxProcess, Worker, service_env

pytestmark = pytest.mark.e2e

SEED = 8
ANALYTICS_LAG_S = 3
GRACE_S = 2
WEBHOOK_DELAY_MS = 200
FAULTS = {"webhook_drop_rate": 0.1, "webhook_duplicate_rate": 0.2, "webhook_reorder": True,
          "webhook_delay_ms": WEBHOOK_DELAY_MS, "rate_limit_every": 7, "stream_drop_every_s": 4,
          "analytics_lag_s": ANALYTICS_LAG_S}
HEALTHY = {"webhook_drop_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_reorder": False,
           "webhook_delay_ms": 0, "rate_limit_every": None, "stream_drop_every_s": None,
           "billing_fail_status": None}
# Every retry a second apart (the sink's Retry-After), for a minute: the outage is shorter.
RETRY_SCHEDULE = ",".join(["0"] + ["0.5"] * 60)
STEP_S = 90          # the longest any one stage of the run may take
BUDGET_S = 240       # and the whole run
# The marker plays longer than any delivery is held back: its terminal webhook comes after them all.
MARKER_MS = 4_000
assert MARKER_MS > REORDER_HOLD_MS + WEBHOOK_DELAY_MS
TARIFF = Tariff.from_settings(make_settings())


class Stack:
    """The service and its Genesys Cloud org as processes, and what a test needs to drive them."""

    def __init__(self, database_url: str, cwd, exits: ExitStack) -> None:
        self.cwd = cwd
        self.deadline = time.monotonic() + BUDGET_S
        org = {"GENESYS_CLIENT_ID": TEST_CLIENT_ID, "GENESYS_CLIENT_SECRET": TEST_CLIENT_SECRET}
        self.sandbox = SandboxProcess(cwd=cwd, env=service_env(database_url, BILLING_WEBHOOK_SECRET=SECRET, **org),
                                      seed=SEED)
        exits.callback(self.sandbox.stop)
        settings = dict(
            GENESYS_ENVIRONMENT=self.sandbox.base_url, MEDIA_ALLOWED_HOSTS=MEDIA_HOST,
            BILLING_WEBHOOK_URL=f"{self.sandbox.base_url}/sandbox/billing", BILLING_WEBHOOK_SECRET=SECRET,
            BILLING_RETRY_SCHEDULE=RETRY_SCHEDULE, RECONCILE_ANALYTICS_LAG_S=str(ANALYTICS_LAG_S), **org)
        self.env = service_env(database_url, **settings)
        self.web = Gunicorn(database_url, cwd, workers=2, **settings)
        exits.callback(self.web.stop)
        self.env["BILLING_SYNC_PUBLIC_URL"] = self.web.url
        # A short lease: a killed dispatcher's claimed rows come back within seconds.
        self.dispatcher = Worker("dispatch", ["dispatch", "--poll-interval", "0.1", "--lease-seconds", "5",
                                              "--batch-size", "16", "--concurrency", "8", "--timeout", "2"],
                                 cwd=cwd, env=self.env).start()
        exits.callback(self.dispatcher.stop)
        self.stream = Worker("stream", ["stream", "--refresh-s", "0.2"], cwd=cwd, env=self.env).start()
        exits.callback(self.stream.stop)
        self.calls = SandboxControl(self.sandbox)
        exits.callback(self.calls.close)
        self.sink = Sink(self.sandbox.base_url)
        self.genesys = GenesysClient(api_base=self.sandbox.base_url, login_base=self.sandbox.base_url,
                                     client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET)
        exits.callback(self.genesys.close)

    def wait_for(self, what: str, reached) -> None:
        """Wait until `reached()`, polling gently; fails naming `what` after STEP_S, or sooner when
        the whole test's BUDGET_S runs out."""
        timeout_s = max(0.0, min(STEP_S, self.deadline - time.monotonic()))
        try:
            wait_until(reached, timeout_s=timeout_s, what=what, every_s=0.05)
        except AssertionError as error:
            raise AssertionError(f"{error} (what each process said: {self.cwd}/*.log)") from None

    def cli(self, *args: str) -> str:
        """Run a `billing-sync` command to its end; its stdout (fails the test if it fails)."""
        result = subprocess.run([str(BILLING_SYNC), *args], cwd=self.cwd, env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"billing-sync {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result.stdout


@pytest.fixture
def stack(database_url, tmp_path):
    with ExitStack() as exits:
        yield Stack(database_url, tmp_path, exits)


def count_events(db, source: str) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(PlaybackEvent).where(PlaybackEvent.source == source))


def terminal_sources(db) -> dict[str, set[str]]:
    """playback → the witnesses (webhook, stream) that reported it ended."""
    with db.read() as session:
        rows = session.execute(select(PlaybackEvent.playback_id, PlaybackEvent.source).where(
            PlaybackEvent.state.in_(sorted(TERMINAL_STATES))).distinct()).all()
    seen: dict[str, set[str]] = defaultdict(set)
    for playback_id, source in rows:
        seen[playback_id].add(source)
    return seen


def outbox(db) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def all_ended(stack: Stack) -> bool:
    return all(p["state"] in TERMINAL_STATES for p in stack.calls.truth())


def all_delivered(stack: Stack, db) -> bool:
    messages = outbox(db)
    return {m.status for m in messages} == {"delivered"} and len(stack.sink.received()) == len(messages)


def listener_pid(db) -> int | None:
    with db.read() as session:
        return session.scalar(select(StreamListener.pid))


def outbox_count(db, condition) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage).where(condition))


def progress(stack: Stack, what: str, reached, load: CallScripts) -> None:
    """Wait, under load, until `reached()`; a failed script or a stalled run fails naming `what`."""

    def check() -> bool:
        load.check()
        return reached()

    stack.wait_for(what, check)


def lose_witnesses(stack: Stack, db, admin: Admin) -> tuple[list[str], str]:
    """Every webhook lost, the stream healthy: two playbacks only the stream sees, and one that
    nobody sees (played behind the service's back, so the stream does not watch its call).
    The stream-only playbacks, and the unseen one's call."""
    stack.calls.faults(webhook_drop_rate=1.0)
    stream_only = [admin.play(stack.calls.place_call(), media(f"only{n}", 4_000)) for n in range(2)]
    unseen_call = stack.calls.place_call()
    stack.genesys.start_playback(unseen_call, media("unseen", 1_500))
    stack.wait_for("the stream to see the webhook-less playbacks end",
             lambda: all(terminal_sources(db).get(p) == {"stream"} for p in stream_only))
    stack.wait_for("the unseen playback to end", lambda: all_ended(stack))
    return stream_only, unseen_call


def crash_under_load(stack: Stack, db, admin: Admin) -> int:
    """Every fault on and calls running; kill -9 a gunicorn worker, the dispatcher and the stream
    worker, and fail the billing sink for a stretch, each at a point of progress. The worker killed."""
    stack.calls.faults(**FAULTS)
    load = CallScripts(admin, stack.calls, stack.genesys, seed=SEED)
    load.start()
    try:
        progress(stack, "40 webhook events in the ledger", lambda: count_events(db, "webhook") >= 40, load)
        killed_worker = stack.web.kill_worker()  # the master stays and replaces it
        progress(stack, "8 billing records accepted by the sink", lambda: len(stack.sink.received()) >= 8, load)
        # Killed holding a claimed batch: its lease must run out before another dispatcher sends it.
        progress(stack, "the dispatcher to hold a claimed batch",
                 lambda: outbox_count(db, OutboxMessage.lease_owner.is_not(None)) > 0, load)
        stack.dispatcher.kill()
        stack.dispatcher.restart()
        stream_seen = count_events(db, "stream")
        progress(stack, "20 more stream events", lambda: count_events(db, "stream") >= stream_seen + 20, load)
        stack.stream.kill()
        stack.stream.restart()
        stream_seen = count_events(db, "stream")
        progress(stack, "10 stream events after the restart",
                 lambda: count_events(db, "stream") >= stream_seen + 10, load)
        stack.calls.faults(socket_closing_now=True)  # maintenance: a new channel, resubscribed
        stack.sink.fail(503)
        progress(stack, "5 deliveries refused by the sink",
                 lambda: outbox_count(db, OutboxMessage.last_status == 503) >= 5, load)
        stack.sink.fail(None)
        finished = load.finished
        progress(stack, "6 more call scripts", lambda: load.finished >= finished + 6, load)
    finally:
        load.stop()
    return killed_worker


def drain(stack: Stack, db, admin: Admin) -> str:
    """Faults off; a marker playback on a healthy line, longer than any delivery was held, reported
    by both witnesses and by analytics (so analytics' lag is behind every call). The marker."""
    stack.calls.faults(**HEALTHY)
    stack.wait_for("every sandbox playback to end", lambda: all_ended(stack))
    marker_call = stack.calls.place_call()
    marker = admin.play(marker_call, media("marker", MARKER_MS))
    stack.wait_for("the marker from both witnesses", lambda: terminal_sources(db).get(marker) == {"webhook", "stream"})
    stack.wait_for("analytics to report the marker", lambda: analytics_playbacks(stack, marker_call) == 1)
    return marker


def analytics_playbacks(stack: Stack, conversation_id: str) -> int | None:
    now = datetime.now(UTC)
    metrics = stack.genesys.conversation_playback_metrics(now - timedelta(minutes=10), now + timedelta(minutes=1))
    return next((c.playbacks for c in metrics.conversations if c.conversation_id == conversation_id), None)


def reconcile_once(stack: Stack, db, since: datetime) -> tuple[int, int]:
    """`billing-sync reconcile` over the whole run, then every record delivered. (run id, charges made)."""
    until = datetime.now(UTC) + timedelta(minutes=1)
    said = stack.cli("reconcile", "--since", f"{since:%Y-%m-%dT%H:%M:%S}", "--until", f"{until:%Y-%m-%dT%H:%M:%S}",
                     "--grace-s", str(GRACE_S))
    run_id, charged = map(int, re.search(r"reconciliation (\d+): (\d+) charged", said).groups())
    stack.wait_for("the dispatcher to deliver every record", lambda: all_delivered(stack, db))
    return run_id, charged


def test_the_bill_is_the_truth_after_crashes_outages_and_every_fault(stack, db):
    started = datetime.now(UTC) - timedelta(minutes=1)
    api_key = stack.cli("keys", "create", "--role", "admin").strip().splitlines()[-1]
    stack.cli("genesys", "register-webhook")
    admin = Admin(stack.web.url, api_key)
    stack.wait_for("the stream listener to start", lambda: listener_pid(db) == stack.stream.process.pid)
    stream_only, unseen_call = lose_witnesses(stack, db, admin)
    killed_worker = crash_under_load(stack, db, admin)
    marker = drain(stack, db, admin)
    run_id, charged = reconcile_once(stack, db, started)
    admin.close()
    assert stack.dispatcher.stop() == 0, stack.dispatcher.output()
    assert stack.stream.stop() == 0, stack.stream.output()
    stack.cli("audit", "verify")

    # The crashes happened: the master replaced its worker, the supervisor the other two.
    assert killed_worker not in stack.web.workers() and len(stack.web.workers()) == 2
    assert stack.dispatcher.starts == 2 and stack.stream.starts == 2
    received = stack.sink.received()
    assert_each_record_accepted_once(received, outbox(db))
    truth = {p["playbackId"]: p for p in stack.calls.truth()}
    seen = terminal_sources(db)
    reported = {p for p in truth if seen.get(p)}
    assert set(stream_only) | {marker} <= reported
    billed = assert_the_bill_is_the_truth(received, truth, reported)
    assert charged >= len(stream_only)
    assert all(r["provenance"] == "stream" for p in stream_only for r in billed[p])
    assert_only_the_lost_are_open(db, run_id, truth, reported, unseen_call)


def assert_each_record_accepted_once(received: list[dict], messages: list[OutboxMessage]) -> None:
    """One verified receipt per outbox message, under its webhook-id, carrying its record; some were
    sent more than once (the outage) under the same webhook-id."""
    assert all(r["verified"] for r in received)
    assert sorted(r["webhook_id"] for r in received) == sorted(m.message_id for m in messages)
    record_of = {m.message_id: m.record_id for m in messages}
    assert all(r["payload"]["data"]["id"] == record_of[r["webhook_id"]] for r in received)
    assert sum(r["attempts"] > 1 for r in received) >= 5


def assert_the_bill_is_the_truth(received: list[dict], truth: dict[str, dict], reported: set[str]) -> dict:
    """Per playback a witness reported: its true duration and amount, charged once; nothing else
    billed. The records per playback."""
    billed: dict[str, list[dict]] = defaultdict(list)
    for receipt in received:
        billed[receipt["payload"]["data"]["playback_id"]].append(receipt["payload"]["data"])
    assert set(billed) <= set(truth)
    for playback_id, fact in truth.items():
        records = billed.get(playback_id, [])
        if playback_id not in reported or fact["state"] == "failed":
            assert records == [], (fact, records)
            continue
        got = (sum(r["duration_ms"] for r in records), sum(r["amount_minor"] for r in records),
               sum(r["kind"] == "charge" for r in records))
        assert got == (fact["duration"], TARIFF.rate(fact["duration"]).amount_minor, 1), (fact, records)
    return billed


def assert_only_the_lost_are_open(db, run_id: int, truth: dict[str, dict], reported: set[str],
                                  unseen_call: str) -> None:
    """What both witnesses lost is an open discrepancy of its call, for a person to look at; nothing
    else is open but failed playbacks only the stream saw (nothing to bill); nothing is pending."""
    lost = {truth[p]["conversationId"] for p in truth if p not in reported}
    with db.read() as session:
        found = session.execute(select(Discrepancy.kind, Discrepancy.status, Discrepancy.conversation_id,
                                       Discrepancy.playback_id).where(Discrepancy.run_id == run_id)).all()
    flagged = {d.conversation_id for d in found if (d.kind, d.status) == ("analytics_count_mismatch", "open")}
    assert unseen_call in lost and lost <= flagged
    unexplained = [d for d in found if d.status in ("open", "pending") and not (
        d.kind.startswith("analytics_") and d.conversation_id in lost
        or d.kind == "missing_webhook" and truth[d.playback_id]["state"] == "failed")]
    assert unexplained == []

"""The demo `billing-sync run` drives: calls in the sandbox, playbacks through our API, a DTMF
switch, faults on, then settle, reconcile and export. It only reports; every number in the
summary is read from the service afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..sandbox.control_client import SandboxControl
from ..sandbox.delivery import REORDER_HOLD_MS
from .service_api import ServiceAPI

TERMINAL = frozenset(("completed", "stopped", "failed"))
HEALTHY = {"webhook_drop_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_reorder": False,
           "webhook_delay_ms": 0, "rate_limit_every": None, "stream_drop_every_s": None}
FAULTS_ON = {**HEALTHY, "webhook_duplicate_rate": 0.3, "webhook_reorder": True, "webhook_delay_ms": 500,
             "rate_limit_every": 7, "stream_drop_every_s": 6.0}
# The longest a webhook the sandbox holds back (delay plus reorder) can arrive after its event.
LATE_DELIVERY_S = (FAULTS_ON["webhook_delay_ms"] + REORDER_HOLD_MS) / 1000 + 0.5
SWITCH_DIGIT = "1"
LONG_MS = 120_000
WAIT_S = 30.0
POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class DemoResult:
    run_id: int
    export_path: Path


class Demo:
    """One pass of demo traffic against a running stack; `guard` raises when a child has died."""

    def __init__(self, api: ServiceAPI, sandbox: SandboxControl, *, media_host: str, export_dir: Path,
                 say: Callable[[str], None], guard: Callable[[], None]) -> None:
        self.api = api
        self.sandbox = sandbox
        self.media_host = media_host
        self.export_dir = export_dir
        self.say = say
        self.guard = guard
        self.unheard: str | None = None

    def media(self, name: str, duration_ms: int) -> str:
        return f"https://{self.media_host}/demo/{name}.wav?duration_ms={duration_ms}"

    def run(self) -> DemoResult:
        started = datetime.now(UTC)
        self.sandbox.faults(**HEALTHY)
        self.lose_webhooks()
        self.play_under_faults()
        self.settle()
        # Only this demo's playbacks: an earlier run's in the same database are not this sandbox's.
        return DemoResult(*self.reconcile_and_export(since=started - timedelta(seconds=5)))

    def lose_webhooks(self) -> None:
        self.say("demo: one call whose webhooks are all lost; only the event stream sees its playback")
        self.sandbox.faults(webhook_drop_rate=1.0)
        call = self.sandbox.place_call()
        self.unheard = self.api.play(call, self.media("unheard", 6_000))
        self.wait_for(lambda: self._truth_state(self.unheard) in TERMINAL, "the unheard playback to end")

    def play_under_faults(self) -> None:
        self.say("demo: faults on: a 429 on every 7th Genesys call, webhooks duplicated, delayed and "
                 "reordered, the stream socket dropped every 6 s")
        self.sandbox.faults(**FAULTS_ON)
        calls = {name: self.sandbox.place_call() for name in ("welcome", "notice", "stop", "hangup", "switch",
                                                               "broken")}
        self.api.add_switch_rule(dtmf=SWITCH_DIGIT, media_url=self.media("agent", 3_000),
                                 conversation_id=calls["switch"])
        self.api.play(calls["welcome"], self.media("welcome", 3_000))
        self.api.play(calls["notice"], self.media("notice", 5_000))
        self.api.play(calls["broken"], f"https://{self.media_host}/demo/broken.wav?fail=1")
        for name in ("stop", "hangup", "switch"):
            self.api.play(calls[name], self.media(f"{name}-hold", LONG_MS), max_duration_s=60)
        self.say(f"demo: {len(calls) + 1} calls, playbacks started through POST /api/v1/conversations/{{id}}/playbacks")
        self.pause(2.5)
        self.api.stop(calls["stop"])
        self.sandbox.disconnect(calls["hangup"])
        self.say("demo: one playback stopped through the API, one call hung up; "
                 f"the caller on the third presses {SWITCH_DIGIT}")
        if not self.press_until_switched(calls["switch"]):
            self.say("demo: the DTMF switch did not happen in time; stopping that call's media")
            self.api.stop(calls["switch"])

    def press_until_switched(self, conversation_id: str) -> bool:
        """Press the digit every 2 s (a press during a dropped socket is lost) until a rule switched the media."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            self.sandbox.press(conversation_id, SWITCH_DIGIT)
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                if len(self.api.playbacks(conversation_id)) >= 2:
                    self.say("demo: the switching rule replaced the media on DTMF")
                    return True
                self.pause(POLL_S)
        return False

    def settle(self) -> None:
        self.say("demo: waiting for every playback to end and its webhooks to reach the ledger")
        self.wait_for(self._everything_ended, "every playback to end in the sandbox and in the ledger")
        self.sandbox.faults(**HEALTHY)
        self.pause(LATE_DELIVERY_S)  # held-back copies and progress events land before anything is counted
        self.wait_for(lambda: not self.api.outbox_pending(), "the dispatcher to deliver every billing record")

    def reconcile_and_export(self, *, since: datetime) -> tuple[int, Path]:
        until = datetime.now(UTC) + timedelta(seconds=1)
        run = self.api.reconcile(since, until, grace_s=0)
        self.say(f"demo: reconciliation {run['id']}: {run['healed']} healed, {run['open']} open, "
                 f"{run['pending']} pending, {run['info']} for information")
        self.wait_for(lambda: not self.api.outbox_pending(), "the dispatcher to deliver the healing records")
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = (self.export_dir / f"audit-{until.strftime('%Y%m%dT%H%M%SZ')}.csv").resolve()
        self.api.export_csv("actions", since, until, path)
        return run["id"], path

    def _truth_state(self, playback_id: str) -> str | None:
        return next((p["state"] for p in self.sandbox.truth() if p["playbackId"] == playback_id), None)

    def _everything_ended(self) -> bool:
        """Every playback ended in the sandbox, and its end is in the ledger: from the webhook,
        or from any witness for the one whose webhooks were lost."""
        truth = self.sandbox.truth()
        if not all(p["state"] in TERMINAL for p in truth):
            return False
        for fact in truth:
            playback = self.api.playback(fact["playbackId"])
            sources = {e["source"] for e in playback["events"] if e["state"] in TERMINAL} if playback else set()
            if not (sources if fact["playbackId"] == self.unheard else "webhook" in sources):
                return False
        return True

    def wait_for(self, predicate: Callable[[], bool], what: str) -> bool:
        deadline = time.monotonic() + WAIT_S
        while not predicate():
            if time.monotonic() > deadline:
                self.say(f"demo: gave up waiting for {what} after {WAIT_S:.0f} s; going on")
                return False
            self.pause(POLL_S)
        return True

    def pause(self, seconds: float) -> None:
        self.guard()
        time.sleep(seconds)

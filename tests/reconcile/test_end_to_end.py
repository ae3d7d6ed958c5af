"""The end-to-end property: after faulty delivery and one reconcile run, the bill is the truth.

The sandbox drops 10% of webhooks for good, duplicates 10% and reorders them; the stream
drops now and then. A few playbacks lose every webhook (the stream alone saw them), and
one loses both witnesses. After traffic ends and one run, every playback that at least one
witness reported is billed (charges + adjustments) exactly its true duration and amount,
none twice; the one nobody reported is an open analytics discrepancy on its conversation;
a second run changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import case, func, select

from billing_sync.genesys.client import GenesysClient
from billing_sync.ledger.events import TERMINAL_STATES
from billing_sync.ledger.rating import Tariff
from billing_sync.models import BillingRecord, Discrepancy, PlaybackEvent
from billing_sync.reconcile import Rules, reconcile
from billing_sync.sandbox.delivery import REORDER_HOLD_MS

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..control_fixtures import MEDIA_HOST
from ..genesys.sandbox_helpers import wait_until
from ..workers.test_stream_worker import play

pytestmark = pytest.mark.e2e
WAIT_S = 30
MEDIA = f"https://{MEDIA_HOST}/{{name}}.wav?duration_ms={{ms}}"
FAULTY = {"webhook_drop_rate": 0.1, "webhook_duplicate_rate": 0.1, "webhook_reorder": True,
          "stream_drop_every_s": 40}
HEALTHY = {"webhook_drop_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_reorder": False,
           "stream_drop_every_s": None}


def terminal_sources(db, playback_id) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(PlaybackEvent.source).where(
            PlaybackEvent.playback_id == playback_id, PlaybackEvent.state.in_(sorted(TERMINAL_STATES)))))


def billed(db) -> dict[str, tuple[int, int, int]]:
    """playback → (net ms, net amount, charges)."""
    with db.read() as session:
        rows = session.execute(select(
            BillingRecord.playback_id, func.sum(BillingRecord.duration_ms), func.sum(BillingRecord.amount_minor),
            func.sum(case((BillingRecord.kind == "charge", 1), else_=0)),
        ).group_by(BillingRecord.playback_id)).all()
    return {pid: (int(ms), int(amount), int(charges)) for pid, ms, amount, charges in rows}


def test_one_run_makes_the_bill_the_truth(sandbox, calls, control_app, control_settings, control_client,
                                          admin_key, served_app, start_worker):
    db = control_app.extensions["billing_sync"].db
    clock = sandbox.platform.clock
    since = clock.now() - timedelta(minutes=1)
    headers, _ = admin_key()
    with GenesysClient.from_settings(control_settings) as genesys:
        genesys.register_webhook("PlaybackBillingSync", f"{served_app}/webhooks/genesys", WEBHOOK_USER,
                                 WEBHOOK_PASSWORD)
        start_worker()
        # Every webhook lost: the stream alone sees these (their `requested` rows make it watch).
        calls.faults(**{**HEALTHY, "webhook_drop_rate": 1.0})
        stream_only = [play(control_client, headers, calls.place_call(), MEDIA.format(name=f"s{n}", ms=60_000))
                       for n in range(2)]
        # Started behind the service's back with every webhook lost: no witness at all.
        unseen_call = calls.place_call()
        unseen = genesys.start_playback(unseen_call, MEDIA.format(name="unseen", ms=10_000)).id
        wait_until(lambda: all(terminal_sources(db, p) == {"stream"} for p in stream_only), timeout_s=WAIT_S,
                   what="the stream to see the webhook-less playbacks end")
        calls.faults(**FAULTY)
        played = [play(control_client, headers, calls.place_call(), MEDIA.format(name=f"p{n}", ms=40_000 + 1_000 * n))
                  for n in range(24)]
        played.append(play(control_client, headers, calls.place_call(), f"https://{MEDIA_HOST}/broken.wav?fail=1"))
        wait_until(lambda: all(p["state"] in TERMINAL_STATES for p in calls.truth()), timeout_s=WAIT_S,
                   what="every sandbox playback to end")
        # Let held (reordered) deliveries go out, then a marker behind them on a healthy line.
        calls.faults(**HEALTHY)
        held_until = clock.now() + timedelta(milliseconds=2 * REORDER_HOLD_MS)
        wait_until(lambda: clock.now() > held_until, timeout_s=WAIT_S, what="the reorder hold to pass")
        marker = play(control_client, headers, calls.place_call(), MEDIA.format(name="marker", ms=20_000))
        wait_until(lambda: terminal_sources(db, marker) == {"webhook", "stream"}, timeout_s=WAIT_S,
                   what="the marker from both witnesses")
        until = clock.now() + timedelta(minutes=1)
        tariff = Tariff.from_settings(control_settings)
        rules = Rules(grace_s=0, analytics_lag_s=0)
        first = reconcile(db, genesys, tariff, since=since, until=until, rules=rules, actor="test",
                          as_of=clock.now())
        after_first = billed(db)
        second = reconcile(db, genesys, tariff, since=since, until=until, rules=rules, actor="test",
                           as_of=clock.now())
        assert billed(db) == after_first and (second.charged, second.adjusted) == (0, 0)

    truth = {p["playbackId"]: p for p in calls.truth()}
    assert set(stream_only) | set(played) | {unseen, marker} == set(truth)
    reported = {pid for pid in truth if terminal_sources(db, pid)}
    assert unseen not in reported and set(stream_only) <= reported
    for playback_id in reported:
        fact = truth[playback_id]
        expected = tariff.rate(fact["duration"]).amount_minor
        if fact["state"] == "failed":
            assert playback_id not in after_first, fact
        else:
            assert after_first[playback_id] == (fact["duration"], expected, 1), fact
    assert first.charged >= len(stream_only)
    with db.read() as session:
        lost = session.execute(select(Discrepancy.kind, Discrepancy.status).where(
            Discrepancy.run_id == first.run_id, Discrepancy.conversation_id == unseen_call)).all()
    assert ("analytics_count_mismatch", "open") in lost
    assert unseen not in after_first

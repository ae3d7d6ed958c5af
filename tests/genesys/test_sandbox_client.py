"""The REST client against the sandbox org over real HTTP: what the contract promises, end to end."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from contextlib import closing
from datetime import timedelta

import pytest

from billing_sync.genesys import errors
from billing_sync.genesys.client import GenesysClient
from billing_sync.sandbox.clock import ManualClock
from billing_sync.sandbox.testing import running_sandbox

from .conftest import FakeClock, Sleeps
from .sandbox_helpers import RecordingTransport, SandboxControl, client_for, sandbox_settings, wait_until

MEDIA = "https://media.example.com/welcome.wav"


@pytest.fixture
def sandbox():
    with running_sandbox(seed=0, time_scale=50.0) as sandbox:
        yield sandbox


@pytest.fixture
def control(sandbox):
    control = SandboxControl(sandbox)
    yield control
    control.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sleeps(clock):
    return Sleeps(clock)


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def genesys(sandbox, transport, clock, sleeps):
    with client_for(sandbox, transport=transport, clock=clock, sleep=sleeps, rng=random.Random(5)) as client:
        yield client


def test_a_call_placed_in_the_org_is_playable_and_plays(control, genesys):
    conversation_id = control.place_call()
    call = genesys.get_call(conversation_id)
    assert call.playable and any(p.purpose == "customer" for p in call.participants)
    playback = genesys.start_playback(conversation_id, MEDIA + "?duration_ms=60000")
    assert (playback.conversation_id, playback.state, playback.max_duration_s) == (conversation_id, "started", 30)
    stopped = genesys.stop_playback(conversation_id)
    assert stopped.id == playback.id
    wait_until(lambda: [p["state"] for p in control.truth()] == ["stopped"], what="the playback to stop")


def test_the_token_is_cached_and_refreshed_before_it_expires(control, genesys, transport, clock):
    conversation_id = control.place_call()
    for _ in range(5):
        genesys.get_call(conversation_id)
    assert transport.statuses("POST", "/oauth/token") == [200]
    clock.advance(86_400 - 59)  # inside the last minute of the token's day
    genesys.get_call(conversation_id)
    assert transport.statuses("POST", "/oauth/token") == [200, 200]
    assert 401 not in transport.statuses("GET")


def test_a_token_the_org_expired_early_is_refreshed_once_and_the_call_retried(transport, clock, sleeps):
    org_clock = ManualClock()
    with running_sandbox(seed=0, clock=org_clock, token_ttl_s=3_600) as sandbox:
        with client_for(sandbox, transport=transport, clock=clock, sleep=sleeps) as genesys, \
                closing(SandboxControl(sandbox)) as control:
            conversation_id = control.place_call()
            genesys.get_call(conversation_id)
            org_clock.advance(3_601)  # the org's clock moved on; ours did not, so we hold a dead token
            assert genesys.get_call(conversation_id).id == conversation_id
    assert transport.statuses("GET") == [200, 401, 200]
    assert transport.statuses("POST", "/oauth/token") == [200, 200]


def test_wrong_client_credentials_are_unauthorized(sandbox, transport):
    settings = sandbox_settings(sandbox, genesys_client_secret="not-the-secret")
    with GenesysClient.from_settings(settings, transport=transport) as genesys:
        with pytest.raises(errors.Unauthorized) as raised:
            genesys.get_call("anything")
    assert (raised.value.code, raised.value.path) == ("invalid_client", "/oauth/token")


def test_429_waits_retry_after_and_every_call_succeeds(control, genesys, transport, sleeps):
    conversation_id = control.place_call()
    control.faults(rate_limit_every=3)
    for _ in range(9):
        assert genesys.get_call(conversation_id).id == conversation_id
    limited = [(status, retry_after) for method, path, status, retry_after in transport.exchanges
               if method == "GET" and status == 429]
    assert len(limited) >= 3
    assert sleeps.waits == [min(float(retry_after), 60.0) for _, retry_after in limited]


def test_the_play_post_is_not_repeated_when_its_answer_is_lost(control, genesys, transport):
    conversation_id = control.place_call()
    transport.lose_answer = lambda request: request.method == "POST" and request.url.path.endswith("/actions/play")
    with pytest.raises(errors.GenesysTimeout) as raised:
        genesys.start_playback(conversation_id, MEDIA)
    assert raised.value.path == f"/api/v2/conversations/voice/{conversation_id}/actions/play"
    assert transport.statuses("POST", "/actions/play") == [202]
    assert len(control.truth()) == 1  # played once: no blind retry started a second, billable, one


@pytest.mark.parametrize("case", ["400", "404", "409"])
def test_refusals_are_typed(control, genesys, case):
    conversation_id = control.place_call()
    if case == "400":
        with pytest.raises(errors.BadRequest) as raised:
            genesys.start_playback(conversation_id, "https://media.example.com/notes.txt")
    elif case == "404":
        with pytest.raises(errors.NotFound) as raised:
            genesys.get_call("no-such-conversation")
    else:
        control.disconnect(conversation_id)
        assert not genesys.get_call(conversation_id).playable
        with pytest.raises(errors.Conflict) as raised:
            genesys.start_playback(conversation_id, MEDIA)
        assert raised.value.code == "conversation.not.connected"
    assert raised.value.status == int(case) and raised.value.context_id and raised.value.code


def test_a_missing_scope_is_forbidden_and_named():
    with running_sandbox(seed=0, time_scale=50.0, scopes=["conversation:view"]) as sandbox:
        with closing(SandboxControl(sandbox)) as control:
            conversation_id = control.place_call()
        with client_for(sandbox) as genesys:
            assert genesys.get_call(conversation_id).playable
            with pytest.raises(errors.Forbidden) as raised:
                genesys.start_playback(conversation_id, MEDIA)
    assert raised.value.status == 403 and raised.value.context_id
    assert "conversation:play" in raised.value.missing


def test_registering_the_webhook_twice_leaves_one(sandbox, genesys):
    first = genesys.register_webhook("PlaybackBillingSync", "http://127.0.0.1:9/webhooks/genesys", "genesys", "pw-1")
    second = genesys.register_webhook("PlaybackBillingSync", "http://127.0.0.1:9/webhooks/genesys", "genesys", "pw-2")
    assert first.created and not second.created and first.webhook.id == second.webhook.id
    names = Counter(webhook.name for webhook in genesys.list_webhooks())
    assert names == {"PlaybackBillingSync": 1}
    assert genesys.get_webhook(first.webhook.id).auth_username == "genesys"
    genesys.delete_webhook(first.webhook.id)
    assert genesys.list_webhooks() == []


def test_analytics_over_twenty_days_splits_pages_and_sums_like_the_truth(transport):
    org_clock = ManualClock()
    start = org_clock.now()
    with running_sandbox(seed=0, clock=org_clock) as sandbox, closing(SandboxControl(sandbox)) as control:
        with client_for(sandbox, transport=transport) as genesys:
            expected_conversations = _play_for_twenty_days(control, genesys, org_clock)
            org_clock.advance(3_600)
            wait_until(lambda: all(p["state"] in ("completed", "stopped", "failed") for p in control.truth()),
                       what="every playback to end")
            metrics = genesys.conversation_playback_metrics(start - timedelta(hours=1), start + timedelta(days=20))
            ground = control.truth()

    queries = [path for method, path, status, _ in transport.exchanges if path.endswith("/details/query")]
    assert len(queries) == 4  # days 0-7 (two pages), 7-14 and 14-20
    by_conversation: dict[str, list[dict]] = defaultdict(list)
    for playback in ground:
        by_conversation[playback["conversationId"]].append(playback)
    assert {c.conversation_id for c in metrics.conversations} == expected_conversations
    for item in metrics.conversations:
        played = by_conversation[item.conversation_id]
        assert item.playbacks == len(played)
        assert item.completed == sum(p["state"] == "completed" for p in played)
        assert item.played_ms == sum(p["duration"] for p in played)
    assert metrics.playbacks == len(ground)
    assert metrics.completed == sum(p["state"] == "completed" for p in ground)
    assert 0 < metrics.completion_rate < 1


def _play_for_twenty_days(control, genesys, org_clock) -> set[str]:
    """105 calls in the first week (two pages of 100), 15 spread over the next 13 days.

    Every third playback is stopped early and every fifth call plays twice (a newer play
    stops the running one), so counts, completions and durations all differ.
    """
    offsets = [timedelta(hours=1.5) * n for n in range(105)]
    offsets += [timedelta(days=7, hours=1) + timedelta(days=13) / 15 * n for n in range(15)]
    conversations = set()
    elapsed = timedelta()
    for n, offset in enumerate(offsets):
        org_clock.advance((offset - elapsed).total_seconds())
        elapsed = offset
        conversation_id = control.place_call()
        conversations.add(conversation_id)
        genesys.start_playback(conversation_id, f"{MEDIA}?duration_ms={1000 + 10 * n}")
        if n % 5 == 0:
            genesys.start_playback(conversation_id, f"{MEDIA}?duration_ms=2000")
        if n % 3 == 0:
            genesys.stop_playback(conversation_id)
    return conversations

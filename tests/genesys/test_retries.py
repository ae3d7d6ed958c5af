"""429 waits what Genesys asks; 5xx, timeouts and resets are retried only where repeating is safe."""

from __future__ import annotations

import httpx
import pytest

from billing_sync.genesys import errors

from .conftest import genesys_error

CALL = r"/api/v2/conversations/calls/c-1"
PLAY = r"/api/v2/conversations/voice/c-1/actions/play"
A_CALL = httpx.Response(200, json={"id": "c-1", "participants": []})
PLAYING = httpx.Response(202, json={"id": "p-1", "conversationId": "c-1", "state": "started"})


def rate_limited(retry_after: str | None = None) -> httpx.Response:
    headers = {"inin-ratelimit-count": "301", "inin-ratelimit-allowed": "300", "inin-ratelimit-reset": "9"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return genesys_error(429, "too.many.requests.retry.after", "Rate limit exceeded", headers=headers)


def raise_(error: Exception):
    def handler(request):
        raise error
    return handler


def test_429_waits_retry_after_then_succeeds(org, genesys, sleeps):
    org.route("GET", CALL, [rate_limited("7"), rate_limited("2"), A_CALL])
    assert genesys.get_call("c-1").id == "c-1"
    assert sleeps.waits == [7.0, 2.0]


def test_429_on_the_play_post_is_retried_because_it_was_refused(org, genesys, sleeps):
    org.route("POST", PLAY, [rate_limited("3"), PLAYING])
    assert genesys.start_playback("c-1", "https://media.example.com/a.wav").id == "p-1"
    assert sleeps.waits == [3.0] and len(org.api_requests()) == 2


def test_retry_after_is_capped_at_sixty_seconds(org, genesys, sleeps):
    org.route("GET", CALL, [rate_limited("3600"), A_CALL])
    genesys.get_call("c-1")
    assert sleeps.waits == [60.0]


def test_without_retry_after_the_backoff_method_decides(org, genesys, sleeps, monkeypatch):
    monkeypatch.setattr(genesys, "backoff", lambda attempt: 0.25 * attempt)
    org.route("GET", CALL, [rate_limited(), rate_limited(), A_CALL])
    genesys.get_call("c-1")
    assert sleeps.waits == [0.25, 0.5]


def test_backoff_grows_exponentially_with_jitter_and_a_cap(genesys):
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 30.0)]:
        delays = {genesys.backoff(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, so clients that failed together do not retry together


def test_rate_limited_after_the_last_try(org, make_client, sleeps):
    genesys = make_client(max_tries=3)
    org.route("GET", CALL, lambda request: rate_limited("5"))
    with pytest.raises(errors.RateLimited) as raised:
        genesys.get_call("c-1")
    assert raised.value.retry_after == 5.0 and raised.value.code == "too.many.requests.retry.after"
    assert len(org.api_requests()) == 3 and sleeps.waits == [5.0, 5.0]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_get_is_retried_on_a_gateway_error(org, genesys, sleeps, status):
    org.route("GET", CALL, [genesys_error(status, "service.unavailable"), A_CALL])
    assert genesys.get_call("c-1").id == "c-1"
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_the_play_post_is_not_retried_on_a_gateway_error(org, genesys, sleeps, status):
    org.route("POST", PLAY, [genesys_error(status, "service.unavailable"), PLAYING])
    with pytest.raises(errors.ServerError) as raised:
        genesys.start_playback("c-1", "https://media.example.com/a.wav")
    assert raised.value.status == status and raised.value.method == "POST"
    assert len(org.api_requests()) == 1 and sleeps.waits == []


def test_a_500_is_not_retried_even_for_a_get(org, genesys, sleeps):
    org.route("GET", CALL, [genesys_error(500, "internal.server.error"), A_CALL])
    with pytest.raises(errors.ServerError):
        genesys.get_call("c-1")
    assert sleeps.waits == []


def test_the_play_post_that_times_out_raises_genesys_timeout_without_retrying(org, genesys, sleeps):
    org.route("POST", PLAY, raise_(httpx.ReadTimeout("timed out")))
    with pytest.raises(errors.GenesysTimeout) as raised:
        genesys.start_playback("c-1", "https://media.example.com/a.wav")
    assert (raised.value.method, raised.value.path) == ("POST", "/api/v2/conversations/voice/c-1/actions/play")
    assert "may or may not" in str(raised.value)
    assert len(org.api_requests()) == 1 and sleeps.waits == []


def test_a_get_that_times_out_is_retried(org, genesys, sleeps):
    answers = iter([httpx.ReadTimeout("timed out"), A_CALL])

    def flaky(request):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    org.route("GET", CALL, flaky)
    assert genesys.get_call("c-1").id == "c-1"
    assert len(org.api_requests()) == 2 and len(sleeps.waits) == 1


def test_a_get_that_keeps_timing_out_raises_after_the_last_try(org, make_client):
    genesys = make_client(max_tries=2)
    org.route("GET", CALL, raise_(httpx.ReadTimeout("timed out")))
    with pytest.raises(errors.GenesysTimeout):
        genesys.get_call("c-1")
    assert len(org.api_requests()) == 2


def test_connection_errors_are_retried_for_a_get_and_typed_at_the_end(org, make_client, sleeps):
    genesys = make_client(max_tries=3)
    org.route("GET", CALL, raise_(httpx.ConnectError("connection refused")))
    with pytest.raises(errors.GenesysUnavailable) as raised:
        genesys.get_call("c-1")
    assert raised.value.path == "/api/v2/conversations/calls/c-1"
    assert len(org.api_requests()) == 3 and len(sleeps.waits) == 2


def test_a_reset_during_the_play_post_is_not_retried(org, genesys, sleeps):
    org.route("POST", PLAY, raise_(httpx.RemoteProtocolError("peer closed connection")))
    with pytest.raises(errors.GenesysUnavailable):
        genesys.start_playback("c-1", "https://media.example.com/a.wav")
    assert len(org.api_requests()) == 1 and sleeps.waits == []


def test_the_token_fetch_is_retried_on_a_gateway_error(org, genesys, sleeps):
    answers = iter([genesys_error(503, "service.unavailable")])
    issue = org._issue_token
    org.token_handler = lambda request: next(answers, None) or issue(request)
    org.route("GET", CALL, A_CALL)
    assert genesys.get_call("c-1").id == "c-1"
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("error", [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out")])
def test_a_play_post_that_never_connected_is_retried(org, genesys, sleeps, error):
    answers = iter([error, PLAYING])

    def flaky(request):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    org.route("POST", PLAY, flaky)
    assert genesys.start_playback("c-1", "https://media.example.com/a.wav").id == "p-1"
    assert len(org.api_requests()) == 2 and len(sleeps.waits) == 1

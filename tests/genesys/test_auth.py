"""OAuth client credentials: the token is fetched once, cached, refreshed in time, and never leaked."""

from __future__ import annotations

import base64
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import httpx
import pytest

from billing_sync.config import ConfigError
from billing_sync.genesys import errors
from billing_sync.genesys.client import GenesysClient

from ..conftest import make_settings
from .conftest import CLIENT_ID, CLIENT_SECRET, genesys_error

CALL_PATH = r"/api/v2/conversations/calls/[^/]+"


def a_call(request: httpx.Request) -> httpx.Response:
    conversation_id = request.url.path.rsplit("/", 1)[-1]
    return httpx.Response(200, json={"id": conversation_id, "participants": []})


def test_the_token_request_is_client_credentials_with_basic_auth(org, genesys):
    org.route("GET", CALL_PATH, a_call)
    genesys.get_call("c-1")
    token_request = org.requests[0]
    assert str(token_request.url) == "https://login.example.test/oauth/token"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {"grant_type": ["client_credentials"]}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    api_request = org.api_requests()[0]
    assert api_request.headers["Authorization"] == f"Bearer {org.tokens_issued[0]}"


def test_the_token_is_cached_until_sixty_seconds_before_it_expires(org, genesys, clock):
    org.token_ttl_s = 3_600
    org.route("GET", CALL_PATH, a_call)
    genesys.get_call("c-1")
    clock.advance(3_600 - 61)
    genesys.get_call("c-2")
    assert len(org.tokens_issued) == 1
    clock.advance(2)  # now inside the last minute: refresh before Genesys would refuse it
    genesys.get_call("c-3")
    assert len(org.tokens_issued) == 2
    assert [org.bearer(r) for r in org.api_requests()] == [org.tokens_issued[0]] * 2 + [org.tokens_issued[1]]


def test_many_threads_cause_one_token_fetch(org, make_client):
    gate = threading.Event()
    issued = org._issue_token

    def slow_token(request):
        gate.wait(2)  # hold the first fetch until every thread is queued behind it
        return issued(request)

    org.token_handler = slow_token
    org.route("GET", CALL_PATH, a_call)
    genesys = make_client(clock=time.monotonic)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(genesys.get_call, f"c-{i}") for i in range(16)]
        time.sleep(0.05)
        gate.set()
        calls = [future.result(timeout=5) for future in futures]
    assert len(calls) == 16
    assert len(org.tokens_issued) == 1
    assert {org.bearer(r) for r in org.api_requests()} == {org.tokens_issued[0]}


def test_a_401_drops_the_token_refreshes_once_and_retries_once(org, genesys):
    def revoked_first_token(request):
        if org.bearer(request) == org.tokens_issued[0]:
            return genesys_error(401, "bad.credentials", "Invalid login credentials.")
        return a_call(request)

    org.route("GET", CALL_PATH, revoked_first_token)
    call = genesys.get_call("c-1")
    assert call.id == "c-1"
    assert len(org.tokens_issued) == 2
    assert [org.bearer(r) for r in org.api_requests()] == org.tokens_issued


def test_a_second_401_is_unauthorized_without_a_third_try(org, genesys):
    org.route("GET", CALL_PATH, genesys_error(401, "bad.credentials", "Invalid login credentials."))
    with pytest.raises(errors.Unauthorized) as raised:
        genesys.get_call("c-1")
    assert raised.value.code == "bad.credentials"
    assert len(org.api_requests()) == 2 and len(org.tokens_issued) == 2


def test_a_401_on_a_play_post_is_retried_too_because_nothing_was_done(org, genesys):
    answers = [genesys_error(401, "bad.credentials"),
               httpx.Response(202, json={"id": "p-1", "conversationId": "c-1", "state": "started"})]
    org.route("POST", r"/api/v2/conversations/voice/c-1/actions/play", answers)
    assert genesys.start_playback("c-1", "https://media.example.com/a.wav").id == "p-1"
    assert len(org.api_requests("POST")) == 2


def test_threads_that_all_saw_a_401_refresh_once(org, make_client):
    barrier = threading.Barrier(8, timeout=5)

    def revoked_first_token(request):
        if org.bearer(request) == org.tokens_issued[0]:
            barrier.wait()  # all eight hold the revoked token before any refreshes
            return genesys_error(401, "bad.credentials")
        return a_call(request)

    org.route("GET", CALL_PATH, revoked_first_token)
    genesys = make_client(clock=time.monotonic)
    genesys.refresh_token()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(genesys.get_call, [f"c-{i}" for i in range(8)], timeout=5))
    assert len(results) == 8
    assert len(org.tokens_issued) == 2


def test_bad_client_credentials_raise_unauthorized_with_the_oauth_code(org, genesys):
    org.token_handler = lambda request: httpx.Response(
        401, json={"error": "invalid_client", "description": "Bad client", "error_description": "Bad client"})
    with pytest.raises(errors.Unauthorized) as raised:
        genesys.get_call("c-1")
    assert (raised.value.code, raised.value.path) == ("invalid_client", "/oauth/token")
    assert org.api_requests() == []


@pytest.mark.parametrize("body", [{"token_type": "bearer", "expires_in": 60}, {"access_token": "x"},
                                  {"access_token": "x", "expires_in": "soon"}])
def test_a_malformed_token_answer_is_invalid_response(org, genesys, body):
    org.token_handler = lambda request: httpx.Response(200, json=body)
    with pytest.raises(errors.InvalidResponse, match="token response"):
        genesys.get_call("c-1")


def test_refresh_token_always_fetches_a_new_one(org, genesys):
    genesys.refresh_token()
    genesys.refresh_token()
    assert len(org.tokens_issued) == 2 and genesys.token_fetches == 2


def test_no_log_line_error_or_repr_holds_the_secret_or_a_token(org, genesys, caplog, capsys):
    answers = [genesys_error(401, "bad.credentials"), genesys_error(429, "too.many.requests.retry.after",
                                                                     headers={"Retry-After": "1"}),
               genesys_error(404, "not.found", "Conversation not found")]
    org.route("GET", CALL_PATH, answers)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the app quiets it; here we read every line
    with pytest.raises(errors.NotFound) as raised:
        genesys.get_call("c-1")
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    # The logs were captured (structlog writes to stdout or stderr, stdlib to caplog) ...
    assert "genesys.token.fetched" in logged and "genesys.retry" in logged and "HTTP Request" in logged
    texts = [logged, str(raised.value), repr(raised.value), repr(genesys), repr(genesys._tokens)]
    assert len(org.tokens_issued) == 2
    # ... and none of them holds the secret or a token.
    for secret in [CLIENT_SECRET, *org.tokens_issued]:
        for text in texts:
            assert secret not in text


def test_from_settings_needs_the_client_credentials(database_url):
    settings = make_settings(database_url=database_url)
    with pytest.raises(ConfigError, match="GENESYS_CLIENT_ID"):
        GenesysClient.from_settings(settings)


def test_from_settings_uses_the_environment_and_the_playback_base(database_url):
    settings = make_settings(database_url=database_url,
                        genesys_environment="eu-west-1", genesys_client_id="id", genesys_client_secret="s")
    with GenesysClient.from_settings(settings) as client:
        assert (client.api_base, client.login_base, client.playback_base) == (
            "https://api.mypurecloud.ie", "https://login.mypurecloud.ie", "https://api.mypurecloud.ie")
    with GenesysClient.from_settings(settings.replace(genesys_playback_base_url="https://play.example.com")) as client:
        assert client.playback_base == "https://play.example.com"

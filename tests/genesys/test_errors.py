"""One function maps a Genesys Cloud response to a typed error carrying what finds the call."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from billing_sync.genesys import errors
from billing_sync.genesys.errors import error_from_response, retry_after_seconds

from .conftest import error_body


def response(status: int, body=None, headers=None, method="POST", path="/api/v2/things/1") -> httpx.Response:
    request = httpx.Request(method, f"https://api.example.test{path}")
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "bad.request", errors.BadRequest),
    (401, "bad.credentials", errors.Unauthorized),
    (403, "missing.permissions", errors.Forbidden),
    (404, "not.found", errors.NotFound),
    (409, "conversation.not.connected", errors.Conflict),
    (429, "too.many.requests.retry.after", errors.RateLimited),
    (500, "internal.server.error", errors.ServerError),
    (503, "service.unavailable", errors.ServerError),
    (418, "teapot", errors.GenesysError),
])
def test_each_status_maps_to_its_error_with_every_fact(status, code, cls):
    body = error_body(status, code, "it went wrong")
    error = error_from_response(response(status, body))
    assert type(error) is cls
    assert isinstance(error, errors.GenesysError)
    assert (error.status, error.code, error.context_id) == (status, code, body["contextId"])
    assert (error.method, error.path, error.message) == ("POST", "/api/v2/things/1", "it went wrong")
    assert code in str(error) and body["contextId"] in str(error) and "/api/v2/things/1" in str(error)


def test_oauth_error_bodies_give_their_code_and_description():
    body = {"error": "invalid_client", "description": "client not found", "error_description": "client not found"}
    error = error_from_response(response(401, body, path="/oauth/token"))
    assert isinstance(error, errors.Unauthorized)
    assert (error.code, error.message, error.path) == ("invalid_client", "client not found", "/oauth/token")


def test_a_body_that_is_not_json_still_gives_a_typed_error():
    error = error_from_response(response(502, headers={"Content-Type": "text/html"}))
    assert isinstance(error, errors.ServerError)
    assert error.status == 502 and error.code is None and error.message == "Bad Gateway"


@pytest.mark.parametrize(("body", "missing"), [
    (error_body(403, "missing.permissions", "You are missing the following permission(s): conversation:play",
                messageParams={"permissions": ["conversation:play"]}), ("conversation:play",)),
    (error_body(403, "missing.scope", "Missing required scope: analytics:query"), ("analytics:query",)),
    (error_body(403, "missing.any.permissions",
                "You are missing the following permissions: analytics:conversationDetail:view, webhook:write"),
     ("analytics:conversationDetail:view", "webhook:write")),
    (error_body(403, "not.authorized", "Not authorized"), ()),
])
def test_forbidden_names_the_missing_scope_when_the_body_does(body, missing):
    error = error_from_response(response(403, body))
    assert isinstance(error, errors.Forbidden)
    assert error.missing == missing


def test_rate_limited_carries_retry_after():
    error = error_from_response(response(429, error_body(429, "too.many.requests.retry.after"),
                                         headers={"Retry-After": "7"}))
    assert isinstance(error, errors.RateLimited) and error.retry_after == 7.0


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None), ("", None), ("nan", None),
    ("Tue, 24 Nov 2026 02:00:30 GMT", 30.0),
])
def test_retry_after_accepts_seconds_and_http_dates(header, seconds):
    now = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(response(429, headers={"Retry-After": header}), now=now) == seconds

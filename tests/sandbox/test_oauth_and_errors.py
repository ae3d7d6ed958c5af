"""OAuth client credentials, Genesys error bodies, scopes and the 429 fault."""

from __future__ import annotations

import uuid

import httpx

from billing_sync.sandbox import ManualClock
from billing_sync.sandbox.testing import running_sandbox

from .conftest import api_client, get_token

ERROR_FIELDS = {"message", "code", "status", "messageParams", "contextId", "details", "errors"}


def assert_genesys_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert ERROR_FIELDS <= body.keys()
    assert body["status"] == status and body["code"] == code
    assert body["details"] == [] or all("fieldName" in d for d in body["details"])
    assert body["errors"] == []
    uuid.UUID(body["contextId"])
    return body


def test_token_for_good_credentials(sandbox):
    response = get_token(sandbox.base_url)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32


def test_token_refused_for_bad_credentials(sandbox):
    response = get_token(sandbox.base_url, secret="wrong")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["description"] and body["error_description"] == body["description"]


def test_token_accepts_form_credentials_and_rejects_other_grants(sandbox):
    form = {"grant_type": "client_credentials", "client_id": "sandbox-test-client",
            "client_secret": "sandbox-test-secret"}
    assert httpx.post(f"{sandbox.base_url}/oauth/token", data=form).status_code == 200
    form["grant_type"] = "password"
    response = httpx.post(f"{sandbox.base_url}/oauth/token", data=form)
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_missing_and_unknown_tokens_get_401(sandbox):
    url = f"{sandbox.base_url}/api/v2/webhooks"
    assert_genesys_error(httpx.get(url), 401, "authentication.required")
    assert_genesys_error(httpx.get(url, headers={"Authorization": "Bearer nope"}),
                         401, "bad.credentials")


def test_expired_token_gets_401():
    clock = ManualClock()
    with running_sandbox(clock=clock, token_ttl_s=60) as sandbox, api_client(sandbox) as api:
        assert api.get("/api/v2/webhooks").status_code == 200
        clock.advance(61)
        assert_genesys_error(api.get("/api/v2/webhooks"), 401, "bad.credentials")
        assert get_token(sandbox.base_url).json()["expires_in"] == 60


def test_call_outside_the_scopes_gets_403():
    with running_sandbox(scopes=["conversation:view"], time_scale=100) as sandbox, \
            api_client(sandbox) as api:
        call = httpx.post(f"{sandbox.base_url}/sandbox/conversations").json()["id"]
        assert api.get(f"/api/v2/conversations/calls/{call}").status_code == 200
        response = api.post(f"/api/v2/conversations/voice/{call}/actions/play",
                            json={"play": {"url": "https://m.example.com/a.wav"}})
        body = assert_genesys_error(response, 403, "missing.any.permissions")
        assert "conversation:play" in body["message"]
        assert_genesys_error(api.post("/api/v2/notifications/channels"), 403,
                             "missing.any.permissions")


def test_not_found_bodies(api):
    assert_genesys_error(api.get("/api/v2/conversations/calls/unknown"), 404, "not.found")
    assert_genesys_error(api.get("/api/v2/no/such/route"), 404, "not.found")


def test_bad_json_is_a_400_naming_nothing_secret(api, control):
    response = api.post("/api/v2/webhooks", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert_genesys_error(response, 400, "bad.request")


def test_every_nth_call_is_rate_limited(api, control):
    assert control.put("/faults", json={"rate_limit_every": 3}).status_code == 200
    statuses = []
    for _ in range(6):
        response = api.get("/api/v2/webhooks")
        statuses.append(response.status_code)
        assert int(response.headers["inin-ratelimit-allowed"]) == 300
        assert "inin-ratelimit-count" in response.headers
        assert "inin-ratelimit-reset" in response.headers
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert_genesys_error(response, 429, "too.many.requests.retry.after")
    assert statuses == [200, 200, 429, 200, 200, 429]
    control.put("/faults", json={"rate_limit_every": None})
    assert all(api.get("/api/v2/webhooks").status_code == 200 for _ in range(4))


def test_conversation_views(api, control):
    call = control.post("/conversations", json={"ani": "tel:+15551234"}).json()["id"]
    view = api.get(f"/api/v2/conversations/calls/{call}").json()
    assert view["id"] == call and view["selfUri"] == f"/api/v2/conversations/calls/{call}"
    customer = next(p for p in view["participants"] if p["purpose"] == "customer")
    assert customer["state"] == "connected" and customer["ani"] == "tel:+15551234"
    assert customer["connectedTime"].endswith("Z") and customer["endTime"] is None
    generic = api.get(f"/api/v2/conversations/{call}").json()
    assert generic["state"] == "connected"
    control.post(f"/conversations/{call}/disconnect")
    generic = api.get(f"/api/v2/conversations/{call}").json()
    assert generic["state"] == "disconnected" and generic["endTime"].endswith("Z")
    view = api.get(f"/api/v2/conversations/calls/{call}").json()
    assert {p["state"] for p in view["participants"]} == {"disconnected"}

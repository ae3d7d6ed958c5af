"""The fault settings API: defaults, partial updates and validation naming the field."""

from __future__ import annotations

import pytest


def test_defaults_and_partial_update(control):
    defaults = control.get("/faults").json()
    assert defaults == {"webhook_drop_rate": 0.0, "webhook_duplicate_rate": 0.0,
                        "webhook_reorder": False, "webhook_delay_ms": 0,
                        "rate_limit_every": None, "stream_drop_every_s": None,
                        "socket_closing_now": False, "analytics_lag_s": 0.0,
                        "billing_fail_status": None, "billing_fail_for_s": None}
    updated = control.put("/faults", json={"webhook_delay_ms": 250, "analytics_lag_s": 60})
    assert updated.status_code == 200
    assert updated.json() == {**defaults, "webhook_delay_ms": 250, "analytics_lag_s": 60.0}
    assert control.get("/faults").json() == updated.json()


@pytest.mark.parametrize("field, value", [
    ("webhook_drop_rate", 1.5), ("webhook_duplicate_rate", "half"), ("webhook_reorder", 1),
    ("webhook_delay_ms", -1), ("rate_limit_every", 0), ("stream_drop_every_s", 0),
    ("analytics_lag_s", None), ("billing_fail_status", 200), ("billing_fail_for_s", -5),
    ("no_such_fault", 1),
])
def test_a_bad_field_is_named(control, field, value):
    response = control.put("/faults", json={field: value})
    assert response.status_code == 400
    body = response.json()
    assert field in body["message"] and body["details"][0]["fieldName"] == field
    assert control.get("/faults").json()["webhook_delay_ms"] == 0


def test_control_api_validates_its_input(control):
    call = control.post("/conversations", json={}).json()["id"]
    assert control.post(f"/conversations/{call}/dtmf", json={"digit": "x"}).status_code == 400
    assert control.post(f"/conversations/{call}/speech", json={}).status_code == 400
    assert control.post("/conversations/nope/disconnect").status_code == 404
    assert control.post("/conversations", json={"ani": 5}).status_code == 400


def test_the_same_seed_repeats_the_same_run():
    import httpx

    from billing_sync.sandbox.testing import running_sandbox

    def run(seed: int) -> list[str]:
        with running_sandbox(seed=seed) as sandbox:
            return [httpx.post(f"{sandbox.base_url}/sandbox/conversations").json()["id"]
                    for _ in range(3)]

    assert run(11) == run(11)
    assert run(11) != run(12)

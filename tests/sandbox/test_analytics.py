"""Conversation details query: metrics from ground truth, lag, paging and limits."""

from __future__ import annotations

from datetime import timedelta

import httpx

from billing_sync.sandbox import ManualClock
from billing_sync.sandbox.clock import iso_ms
from billing_sync.sandbox.testing import running_sandbox

from .conftest import api_client, new_call, play, truth_of, wait_for

QUERY_PATH = "/api/v2/analytics/conversations/details/query"


def query(api: httpx.Client, start, end, page_size=100, page_number=1, **extra) -> httpx.Response:
    body = {"interval": f"{iso_ms(start)}/{iso_ms(end)}", "order": "asc",
            "orderBy": "conversationStart",
            "paging": {"pageSize": page_size, "pageNumber": page_number},
            "segmentFilters": [{"type": "and", "predicates": [{"dimension": "mediaType",
                                                               "value": "voice"}]}], **extra}
    return api.post(QUERY_PATH, json=body)


def customer_metrics(conversation: dict) -> dict[str, int]:
    customer = next(p for p in conversation["participants"] if p["purpose"] == "customer")
    session = customer["sessions"][0]
    assert session["mediaType"] == "voice" and session["sessionId"]
    return {m["name"]: m["value"] for m in session["metrics"]}


def test_metrics_come_from_ground_truth(api, control, sandbox):
    start = sandbox.platform.clock.now() - timedelta(minutes=1)
    call = new_call(control)
    done = play(api, call, "https://m.example.com/a.wav?duration_ms=3000").json()["id"]
    wait_for(lambda: truth_of(control, done)["state"] == "completed", what="completed")
    play(api, call, "https://m.example.com/b.wav", loop=True)
    api.post(f"/api/v2/conversations/voice/{call}/actions/play/stop")
    control.post(f"/conversations/{call}/disconnect")
    stopped = [p for p in control.get("/truth").json()["playbacks"] if p["state"] == "stopped"][0]
    end = sandbox.platform.clock.now() + timedelta(minutes=1)
    body = query(api, start, end).json()
    assert body["totalHits"] == 1
    conversation = body["conversations"][0]
    assert conversation["conversationId"] == call
    assert conversation["originatingDirection"] == "inbound"
    assert conversation["conversationStart"].endswith("Z") and conversation["conversationEnd"]
    assert customer_metrics(conversation) == {"nPlayback": 2, "nPlaybackCompleted": 1,
                                              "tPlayback": 3000 + stopped["duration"]}


def test_lag_hides_recent_conversations():
    clock = ManualClock()
    with running_sandbox(clock=clock, faults={"analytics_lag_s": 300}) as sandbox, \
            api_client(sandbox) as api:
        start = clock.now()
        httpx.post(f"{sandbox.base_url}/sandbox/conversations")
        end = start + timedelta(hours=1)
        assert query(api, start, end).json()["totalHits"] == 0
        clock.advance(301)
        assert query(api, start, end).json()["totalHits"] == 1


def test_paging_walks_every_conversation():
    clock = ManualClock()
    with running_sandbox(clock=clock) as sandbox, api_client(sandbox) as api:
        start = clock.now()
        ids = []
        for _ in range(7):
            ids.append(httpx.post(f"{sandbox.base_url}/sandbox/conversations").json()["id"])
            clock.advance(1)
        end = clock.now()
        pages = [query(api, start, end, page_size=3, page_number=n).json() for n in (1, 2, 3, 4)]
        assert [p["totalHits"] for p in pages] == [7, 7, 7, 7]
        seen = [c["conversationId"] for p in pages for c in p.get("conversations", [])]
        assert seen == ids
        assert "conversations" not in pages[3]
        desc = query(api, start, end, order="desc").json()
        assert [c["conversationId"] for c in desc["conversations"]] == ids[::-1]


def test_limits_are_400s(api, sandbox):
    now = sandbox.platform.clock.now()
    over = query(api, now - timedelta(days=7, seconds=1), now)
    assert over.status_code == 400 and over.json()["details"][0]["fieldName"] == "interval"
    assert query(api, now - timedelta(days=7), now).status_code == 200
    big = query(api, now - timedelta(days=1), now, page_size=101)
    assert big.status_code == 400 and big.json()["details"][0]["fieldName"] == "paging.pageSize"
    assert query(api, now - timedelta(days=1), now, page_number=1000).status_code == 200
    past = query(api, now - timedelta(days=1), now, page_number=1001)
    assert past.status_code == 400
    assert past.json()["details"][0]["fieldName"] == "paging.pageNumber"
    assert api.post(QUERY_PATH, json={"interval": "yesterday"}).status_code == 400

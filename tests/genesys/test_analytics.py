"""The details query (§9): long intervals split, pages walked to totalHits, playbacks summed right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from billing_sync.genesys import errors
from billing_sync.genesys.analytics import format_interval, split_interval

from .conftest import genesys_error, json_of

START = datetime(2026, 11, 1, tzinfo=UTC)
QUERY = r"/api/v2/analytics/conversations/details/query"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def conversation(n: int, start: datetime) -> dict:
    """Conversation n: n % 4 playbacks, n % 3 of them (at most) completed, 1,500 ms each."""
    playbacks = n % 4
    completed = min(n % 3, playbacks)
    metrics = [{"name": "nPlayback", "value": playbacks, "emitDate": iso(start)},
               {"name": "nPlaybackCompleted", "value": completed, "emitDate": iso(start)},
               {"name": "tPlayback", "value": 1500 * playbacks, "emitDate": iso(start)},
               {"name": "tTalk", "value": 99999, "emitDate": iso(start)}]
    return {
        "conversationId": f"conv-{n:04d}", "conversationStart": iso(start),
        "conversationEnd": iso(start + timedelta(minutes=5)), "originatingDirection": "inbound",
        "participants": [
            {"participantId": f"cust-{n}", "purpose": "customer", "sessions": [
                {"sessionId": f"s-{n}", "mediaType": "voice", "metrics": metrics,
                 "segments": [{"segmentStart": iso(start), "segmentEnd": iso(start), "segmentType": "interact"}]}]},
            # An agent's metrics of the same name are not the caller's playbacks.
            {"participantId": f"agent-{n}", "purpose": "agent", "sessions": [
                {"sessionId": f"a-{n}", "mediaType": "voice", "metrics": [{"name": "nPlayback", "value": 50}]}]},
        ],
    }


class DetailsEndpoint:
    """The details query over a fixed set of conversations, refusing what Genesys refuses."""

    def __init__(self, org, conversations: list[dict]) -> None:
        self.conversations = conversations
        self.queries: list[dict] = []
        org.route("POST", QUERY, self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        query = json_of(request)
        self.queries.append(query)
        start_text, end_text = query["interval"].split("/")
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
        paging = query["paging"]
        if end - start > timedelta(days=7):
            return genesys_error(400, "bad.request", "Interval must not exceed 7 days")
        if paging["pageSize"] > 100:
            return genesys_error(400, "bad.request", "pageSize must not exceed 100")
        matching = [c for c in self.conversations
                    if start <= datetime.fromisoformat(c["conversationStart"]) < end]
        first = (paging["pageNumber"] - 1) * paging["pageSize"]
        page = matching[first: first + paging["pageSize"]]
        body = {"totalHits": len(matching)}
        if page:  # Genesys leaves `conversations` out when a page is empty
            body["conversations"] = page
        return httpx.Response(200, json=body)


def test_twenty_days_are_split_paged_and_summed(org, genesys):
    # 30 conversations a day for 20 days: 600, so 7-day parts hold 210 (three pages each).
    items = [conversation(n, START + timedelta(minutes=48 * n)) for n in range(600)]
    endpoint = DetailsEndpoint(org, items)
    metrics = genesys.conversation_playback_metrics(START, START + timedelta(days=20))

    intervals = sorted({q["interval"] for q in endpoint.queries})
    assert intervals == [format_interval(START + timedelta(days=d), START + timedelta(days=min(d + 7, 20)))
                         for d in (0, 7, 14)]
    assert all(q["paging"]["pageSize"] == 100 for q in endpoint.queries)
    assert len(endpoint.queries) == 3 + 3 + 2  # 210, 210 and 180 hits
    assert endpoint.queries[0]["segmentFilters"] == [
        {"type": "and", "predicates": [{"dimension": "mediaType", "value": "voice"}]}]

    assert len(metrics.conversations) == 600
    assert [c.conversation_id for c in metrics.conversations] == [f"conv-{n:04d}" for n in range(600)]
    assert metrics.playbacks == sum(n % 4 for n in range(600))
    assert metrics.completed == sum(min(n % 3, n % 4) for n in range(600))
    assert metrics.played_ms == 1500 * metrics.playbacks
    assert metrics.completion_rate == pytest.approx(metrics.completed / metrics.playbacks)
    third = metrics.conversations[3]
    assert (third.playbacks, third.completed, third.played_ms) == (3, 0, 4500)
    assert third.completion_rate == 0.0
    assert metrics.conversations[0].completion_rate is None  # no playbacks: no rate, not 0 %


def test_a_conversation_reported_by_two_parts_counts_once(org, genesys):
    class Overlapping(DetailsEndpoint):
        def answer(self, request):
            # An overlap-based interval filter: both parts return the same conversation.
            self.queries.append(json_of(request))
            return httpx.Response(200, json={"conversations": self.conversations, "totalHits": 1})

    Overlapping(org, [conversation(3, START + timedelta(days=7))])
    metrics = genesys.conversation_playback_metrics(START, START + timedelta(days=10))
    assert len(metrics.conversations) == 1 and metrics.playbacks == 3


def test_an_empty_interval_has_no_rate(org, genesys):
    DetailsEndpoint(org, [])
    metrics = genesys.conversation_playback_metrics(START, START + timedelta(hours=1))
    assert metrics.conversations == () and metrics.playbacks == 0 and metrics.completion_rate is None


def test_more_results_than_one_query_may_page_are_split_further(org, genesys):
    calls = []

    def answer(request):
        query = json_of(request)
        calls.append(query["interval"])
        start, end = (datetime.fromisoformat(t) for t in query["interval"].split("/"))
        hits = 150_000 if end - start > timedelta(days=2) else 0
        return httpx.Response(200, json={"totalHits": hits})

    org.route("POST", QUERY, answer)
    genesys.conversation_playback_metrics(START, START + timedelta(days=3))
    assert calls[0] == format_interval(START, START + timedelta(days=3))
    assert len(calls) == 3  # the whole, then two halves of 36 hours


def test_naive_or_reversed_bounds_are_refused(genesys):
    with pytest.raises(ValueError, match="timezone-aware"):
        genesys.conversation_playback_metrics(datetime(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="before"):
        genesys.conversation_playback_metrics(START, START)


def test_a_query_is_retried_on_a_gateway_error_because_it_only_reads(org, genesys, sleeps):
    org.route("POST", QUERY, [genesys_error(503, "service.unavailable"),
                              httpx.Response(200, json={"totalHits": 0})])
    genesys.conversation_playback_metrics(START, START + timedelta(hours=1))
    assert len(sleeps.waits) == 1


def test_missing_analytics_scope_is_forbidden(org, genesys):
    org.route("POST", QUERY, genesys_error(403, "missing.scope", "Missing scope: analytics:query"))
    with pytest.raises(errors.Forbidden) as raised:
        genesys.conversation_playback_metrics(START, START + timedelta(hours=1))
    assert raised.value.missing == ("analytics:query",)


def test_an_answer_without_total_hits_is_invalid(org, genesys):
    org.route("POST", QUERY, httpx.Response(200, json={"conversations": []}))
    with pytest.raises(errors.InvalidResponse, match="totalHits"):
        genesys.conversation_playback_metrics(START, START + timedelta(hours=1))


def test_split_interval_covers_exactly_without_gaps():
    parts = split_interval(START, START + timedelta(days=15, hours=3), timedelta(days=7))
    assert parts[0][0] == START and parts[-1][1] == START + timedelta(days=15, hours=3)
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert all(end - start <= timedelta(days=7) for start, end in parts)
    assert format_interval(START, START + timedelta(days=1)) == "2026-11-01T00:00:00.000Z/2026-11-02T00:00:00.000Z"


def test_instants_before_the_year_1000_keep_four_year_digits():
    # Found by the API fuzz: strftime wrote "273-11-20T…", which Genesys Cloud refuses.
    since = datetime(273, 11, 20, 13, 10, 32, tzinfo=UTC)
    assert format_interval(since, since + timedelta(days=1)) == "0273-11-20T13:10:32.000Z/0273-11-21T13:10:32.000Z"


def test_split_interval_reaches_the_last_days_of_the_calendar():
    # Found by the API fuzz: start + 7 days passed datetime.max (an OverflowError, a 500).
    until = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert split_interval(until - timedelta(days=3), until, timedelta(days=7)) == [(until - timedelta(days=3), until)]

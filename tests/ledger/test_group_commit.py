"""Group commit: shared transactions, per-request answers, failures kept apart."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from billing_sync.genesys.payloads import parse_deliveries
from billing_sync.ledger import group_commit
from billing_sync.ledger.group_commit import GroupCommit
from billing_sync.models import PlaybackEvent


def _received(events, n, **kwargs):
    return parse_deliveries([events.event(**kwargs) for _ in range(n)])


def _run_concurrently(committer, requests):
    results, errors = [None] * len(requests), [None] * len(requests)
    run = _recorder(committer, results, errors)
    threads = [threading.Thread(target=run, args=(i, requests[i])) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


def _recorder(committer, results, errors):
    """A thread's work: record `received`, keep its answer or error under `key`, then set `then`."""
    def run(key, received, then=None):
        try:
            results[key] = committer.record(received)
        except BaseException as error:  # reported by the test
            errors[key] = error
        if then:
            then.set()

    return run


@pytest.fixture
def hold_first_commit(monkeypatch):
    """Keep the first transaction open until `count` more requests are queued behind it."""
    real = group_commit.record_events
    calls = []

    def install(committer, count):
        def slow_first(connection, received, **options):
            calls.append(len(received))
            if len(calls) == 1:
                deadline = time.monotonic() + 10  # then on: the assertions say what queued instead
                while len(committer._queue) < count and time.monotonic() < deadline:
                    threading.Event().wait(0.005)
            return real(connection, received, **options)

        monkeypatch.setattr(group_commit, "record_events", slow_first)
        return calls

    return install


def test_queued_requests_share_one_transaction(db, events, hold_first_commit):
    committer = GroupCommit(db, source="webhook", lanes=1)
    calls = hold_first_commit(committer, 5)
    requests = [_received(events, 3) for _ in range(6)]
    results, errors = _run_concurrently(committer, requests)
    assert errors == [None] * 6
    assert [(r.accepted, r.duplicates) for r in results] == [(3, 0)] * 6
    assert calls == [3, 15]  # the first alone, then the five that queued behind it, together
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(PlaybackEvent)) == 18


def test_a_shared_event_is_accepted_by_one_request_only(db, events, hold_first_commit):
    committer = GroupCommit(db, source="webhook", lanes=1)
    hold_first_commit(committer, 3)
    shared = events.event()
    requests = [_received(events, 1)] + [parse_deliveries([shared, events.event()]) for _ in range(3)]
    results, errors = _run_concurrently(committer, requests)
    assert errors == [None] * 4
    assert sorted((r.accepted, r.duplicates) for r in results[1:]) == [(1, 1), (1, 1), (2, 0)]


def test_a_failing_request_fails_alone(db, events, monkeypatch, hold_first_commit):
    committer = GroupCommit(db, source="webhook", lanes=1)
    hold_first_commit(committer, 3)
    held = group_commit.record_events

    def poisoned(connection, received, **options):
        if any(item.event.playback_id == "poison" for item in received):
            raise RuntimeError("poisoned request")
        return held(connection, received, **options)

    requests = [_received(events, 1), _received(events, 2), _received(events, 1, playback_id="poison"), _received(events, 2)]
    monkeypatch.setattr(group_commit, "record_events", poisoned)
    results, errors = _run_concurrently(committer, requests)
    assert isinstance(errors[2], RuntimeError)
    assert [e for i, e in enumerate(errors) if i != 2] == [None] * 3
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(PlaybackEvent)) == 5


def test_a_second_lane_writes_while_the_first_waits(db, events, monkeypatch):
    if db.dialect == "sqlite":
        pytest.skip("SQLite writers queue on one lock: one lane")
    committer = GroupCommit(db, source="webhook", lanes=2)
    real = group_commit.record_events
    second_done = threading.Event()

    def first_waits_for_second(connection, received, **options):
        if any(item.event.playback_id == "first" for item in received):
            assert second_done.wait(timeout=20), "the second request was not written while the first was open"
        return real(connection, received, **options)

    monkeypatch.setattr(group_commit, "record_events", first_waits_for_second)
    first = _received(events, 1, playback_id="first")
    results, errors = [None, None], [None, None]
    run = _recorder(committer, results, errors)

    first_thread = threading.Thread(target=run, args=(0, first))
    first_thread.start()
    while committer._leaders == 0:  # the first request leads its own transaction
        threading.Event().wait(0.005)
    run(1, _received(events, group_commit.LANE_EVENTS), then=second_done)  # enough to open a lane
    first_thread.join(timeout=30)
    assert errors == [None, None]
    assert [(r.accepted, r.duplicates) for r in results] == [(1, 0), (group_commit.LANE_EVENTS, 0)]


def test_a_few_events_wait_for_the_next_group_rather_than_open_a_lane(db, events, hold_first_commit):
    committer = GroupCommit(db, source="webhook", lanes=2)
    calls = hold_first_commit(committer, 5)
    requests = [_received(events, 3) for _ in range(6)]  # 15 waiting: fewer than LANE_EVENTS
    results, errors = _run_concurrently(committer, requests)
    assert errors == [None] * 6
    assert [(r.accepted, r.duplicates) for r in results] == [(3, 0)] * 6
    assert calls == [3, 15]


def test_many_threads_lose_nothing(db, events):
    committer = GroupCommit(db, source="webhook")
    requests = [_received(events, 2) for _ in range(40)]
    results, errors = _run_concurrently(committer, requests + requests[:10])
    assert errors == [None] * 50
    assert sum(r.accepted for r in results) == 80 and sum(r.duplicates for r in results) == 20


def test_a_leader_writes_its_own_request_when_another_leader_takes_the_queue_first(db, events, monkeypatch):
    """Two requests can each become a leader before either takes its group (a lane free at both
    arrivals). Whichever takes first must leave the other's request to it: a leader answers its
    request without waiting, so it must have written it."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite writers queue on one lock: one lane")
    committer = GroupCommit(db, source="webhook", lanes=2)
    real_lead, real_record = GroupCommit._lead, group_commit.record_events
    second_writing, first_done = threading.Event(), threading.Event()
    first_thread = None

    def lead(self, *args):
        if threading.current_thread() is first_thread:  # the first leader is slow to take its group
            assert second_writing.wait(timeout=20)
        return real_lead(self, *args)

    def record(connection, received, **options):
        if any(item.event.playback_id == "second" for item in received):
            second_writing.set()
            first_done.wait(timeout=3)  # the first request's answer, if it comes before its write
        return real_record(connection, received, **options)

    monkeypatch.setattr(GroupCommit, "_lead", lead)
    monkeypatch.setattr(group_commit, "record_events", record)
    results, errors = [None, None], [None, None]
    run = _recorder(committer, results, errors)

    first_thread = threading.Thread(target=run, args=(0, _received(events, 1, playback_id="first"), first_done))
    first_thread.start()
    while committer._leaders == 0:
        threading.Event().wait(0.005)
    second = _received(events, group_commit.LANE_EVENTS, playback_id="second")  # enough to open a lane
    second_thread = threading.Thread(target=run, args=(1, second))
    second_thread.start()
    first_thread.join(timeout=30)
    second_thread.join(timeout=30)
    assert errors == [None, None]
    assert [(r.accepted, r.duplicates) for r in results] == [(1, 0), (group_commit.LANE_EVENTS, 0)]
    assert committer._leaders == 0 and committer._queue == []


def test_a_request_handed_to_a_leader_is_not_handed_again(db, events, monkeypatch):
    """Both lanes finish while the one request queued has not yet taken its group: it leads
    once, and the lane the second finisher held is given back (not kept by a leader that will
    never run), so the next requests still find both lanes."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite writers queue on one lock: one lane")
    committer = GroupCommit(db, source="webhook", lanes=2)
    real_lead, real_record = GroupCommit._lead, group_commit.record_events
    entered = {"a": threading.Event(), "b": threading.Event()}
    release = {"a": threading.Event(), "b": threading.Event()}
    b_answered = threading.Event()
    threads = {}

    def lead(self, *args):
        if threading.current_thread() is threads.get("c"):  # slow to start the group handed to it
            assert b_answered.wait(timeout=20)
        return real_lead(self, *args)

    def record(connection, received, **options):
        for name in ("a", "b"):
            if any(item.event.playback_id == name for item in received):
                entered[name].set()
                assert release[name].wait(timeout=20)
        return real_record(connection, received, **options)

    monkeypatch.setattr(GroupCommit, "_lead", lead)
    monkeypatch.setattr(group_commit, "record_events", record)
    results, errors = {}, {}

    sizes = {"a": 1, "b": group_commit.LANE_EVENTS, "c": 1}  # b: enough to open the second lane
    record_as = _recorder(committer, results, errors)

    def run(name, then=None):
        record_as(name, _received(events, sizes[name], playback_id=name), then)

    threads["a"] = threading.Thread(target=run, args=("a",))
    threads["a"].start()
    assert entered["a"].wait(timeout=20)
    threads["b"] = threading.Thread(target=run, args=("b", b_answered))
    threads["b"].start()
    assert entered["b"].wait(timeout=20)
    threads["c"] = threading.Thread(target=run, args=("c",))
    threads["c"].start()
    while len(committer._queue) < 1:
        threading.Event().wait(0.005)
    release["a"].set()  # a hands the lead to c, which waits until b has answered
    threads["a"].join(timeout=30)
    release["b"].set()  # b finds c already handed the lead
    for thread in threads.values():
        thread.join(timeout=30)
    assert errors == {}
    assert {name: (r.accepted, r.duplicates) for name, r in results.items()} == {n: (sizes[n], 0) for n in "abc"}
    assert committer._leaders == 0 and committer._queue == []

"""The playback state machine on its own: any order of the same events, one outcome."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from billing_sync.ledger.events import PlaybackEvent
from billing_sync.ledger.state import apply_events

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def ev(state, sequence, duration):
    return (f"e{sequence}{state}", PlaybackEvent(
        conversation_id="c", playback_id="p", state=state, duration_ms=duration,
        sequence=sequence, occurred_at=T0 + timedelta(seconds=sequence),
    ))


LIFECYCLE = [ev("started", 1, 0), ev("progress", 2, 5000), ev("progress", 3, 10000), ev("completed", 4, 12000)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_order_ends_completed(order):
    events = [LIFECYCLE[i] for i in order]
    state = None
    for event in events:  # one delivery at a time
        state = apply_events(state, [event]).state
    assert (state.state, state.duration_ms, state.last_sequence) == ("completed", 12000, 4)
    assert state.started_at == T0 + timedelta(seconds=1) and state.ended_at == T0 + timedelta(seconds=4)


def test_a_batch_equals_one_by_one():
    assert apply_events(None, LIFECYCLE[::-1]).state == apply_events(None, LIFECYCLE).state


def test_non_terminal_follows_the_highest_sequence():
    outcome = apply_events(None, [ev("progress", 3, 9000), ev("progress", 2, 4000)])
    assert (outcome.state.state, outcome.state.last_sequence, outcome.state.duration_ms) == ("progress", 3, 9000)
    assert not outcome.became_terminal


@pytest.mark.parametrize("second", [ev("failed", 5, 0), ev("stopped", 4, 12000), ev("completed", 4, 11000)])
def test_a_disagreeing_terminal_is_a_conflict_and_changes_nothing(second):
    first = apply_events(None, LIFECYCLE).state
    outcome = apply_events(first, [second])
    assert outcome.state == first
    assert len(outcome.conflicts) == 1 and outcome.conflicts[0].event == second[1]
    assert not outcome.became_terminal


def test_becoming_terminal_is_reported_once():
    first = apply_events(None, LIFECYCLE[:2])
    assert not first.became_terminal
    second = apply_events(first.state, LIFECYCLE[2:])
    assert second.became_terminal
    assert not apply_events(second.state, [LIFECYCLE[3]]).became_terminal

"""Inbound payload parsing: the fast path never accepts what the schemas would refuse."""

from __future__ import annotations

import copy

import pytest

from billing_sync.genesys import payloads

ODD_VALUES = [None, "", "x" * 65, "x" * 129, 0, -1, 1, True, 1.5, "12", "2026-11-24T02:00:00",
              "2026-11-24T02:00:00+01:00", "garbage", [], {}, "completed", "conv-1",
              "conversation:voice:playback", "v2.conversations.conv-1.playback"]


def _event():
    return {
        "id": "e-1", "eventType": "conversation:voice:playback", "conversationId": "conv-1",
        "playbackId": "p-1", "state": "progress", "duration": 1000, "sequence": 2,
        "mediaUrl": "https://media.example.com/a.wav", "timestamp": "2026-11-24T02:28:03.123Z",
    }


def _shapes():
    body = _event()
    notification = {"topicName": "v2.conversations.conv-1.playback", "version": "2", "eventBody": body,
                    "metadata": {"CorrelationId": "c"}}
    bridge = {"version": "0", "id": "eb-1", "detail-type": "x", "source": "s", "detail": copy.deepcopy(notification)}
    return {"bare": body, "notification": copy.deepcopy(notification), "eventbridge": bridge}


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))


def _mutations():
    for shape, item in _shapes().items():
        for path in _paths(item):
            for odd in [*ODD_VALUES, "<delete>"]:
                mutated = copy.deepcopy(item)
                target = mutated
                for key in path[:-1]:
                    target = target[key]
                if odd == "<delete>":
                    del target[path[-1]]
                else:
                    target[path[-1]] = odd
                yield pytest.param(mutated, id=f"{shape}:{'.'.join(path)}={odd!r}"[:90])


def _schema_outcome(item):
    try:
        return payloads._parse_with_schema(item, None)
    except payloads.PayloadError:
        return None


@pytest.mark.parametrize("item", list(_mutations()))
def test_fast_path_accepts_only_what_the_schema_accepts(item):
    fast = payloads._parse_well_formed(copy.deepcopy(item))
    slow = _schema_outcome(copy.deepcopy(item))
    if fast is not None:
        assert slow is not None
        assert fast.event == slow.event and fast.source_event_id == slow.source_event_id


@pytest.mark.parametrize("shape", ["bare", "notification", "eventbridge"])
def test_well_formed_shapes_take_the_fast_path(shape):
    item = _shapes()[shape]
    fast = payloads._parse_well_formed(item)
    assert fast is not None and fast == _schema_outcome(item)

"""The stream worker against the sandbox over real HTTP and WebSocket.

Evidence with source `stream`, topics following the watched conversations, switching by
DTMF and keyword exactly once per cooldown, and survival of drops and socket_closing.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select, update

from billing_sync.genesys.events import dtmf_topic, playback_topic, transcription_topic
from billing_sync.models import AuditEntry, Playback, PlaybackEvent, StreamListener, SwitchRuleFiring, utcnow
from billing_sync.playback import switching
from billing_sync.workers.stream import Shard, watched_conversations

from ..control_fixtures import LONG_MEDIA, OTHER_MEDIA, SHORT_MEDIA
from ..genesys.sandbox_helpers import wait_until
from ..metrics.conftest import scrape

PLAY = "/api/v1/conversations/{}/playbacks"
WAIT_S = 10


def subscribed(sandbox, conversation_id) -> bool:
    channels = sandbox.platform.channels
    return all(channels.subscribers(topic) for topic in
               (playback_topic(conversation_id), dtmf_topic(conversation_id), transcription_topic(conversation_id)))


def stream_events(db, playback_id):
    with db.read() as session:
        rows = session.scalars(select(PlaybackEvent).where(PlaybackEvent.playback_id == playback_id,
                                                           PlaybackEvent.source == "stream")
                               .order_by(PlaybackEvent.sequence))
        return [(e.source_event_id, e.state, e.duration_ms, e.sequence) for e in rows]


def ledger_state(db, playback_id):
    with db.read() as session:
        return session.scalar(select(Playback.state).where(Playback.playback_id == playback_id))


def truth_of(calls, playback_id):
    (played,) = [p for p in calls.truth() if p["playbackId"] == playback_id]
    return played


def rule_audit(db, rule_id):
    with db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.actor == f"switch_rule:{rule_id}")
                                    .order_by(AuditEntry.id)))


@pytest.fixture
def db(control_app):
    return control_app.extensions["billing_sync"].db


@pytest.fixture
def admin(admin_key):
    return admin_key()[0]


def play(client, headers, conversation_id, media):
    response = client.post(PLAY.format(conversation_id), json={"media_url": media, "max_duration_s": 3600},
                           headers=headers)
    assert response.status_code == 201, response.json
    return response.json["playback_id"]


def new_rule(client, headers, **body):
    response = client.post("/api/v1/switch-rules", json={"media_url": OTHER_MEDIA, **body}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_playback_events_become_stream_evidence_and_topics_follow_the_playback(
        sandbox, calls, control_client, admin, db, start_worker):
    worker = start_worker()
    conversation_id = calls.place_call()
    first = play(control_client, admin, conversation_id, LONG_MEDIA)
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the conversation's topics")
    # Replacing the long playback: both end up fully seen from here on.
    second = play(control_client, admin, conversation_id, SHORT_MEDIA)
    wait_until(lambda: ledger_state(db, second) == "completed", timeout_s=WAIT_S, what="the stream's completed")
    events = stream_events(db, second)
    played = truth_of(calls, second)
    assert [e[3] for e in events] == list(range(1, len(events) + 1))
    assert (events[0][1], events[-1][1], events[-1][2]) == ("started", "completed", played["duration"])
    assert ledger_state(db, first) == "stopped"
    # Nothing plays any more: the conversation is dropped from the subscriptions.
    wait_until(lambda: not sandbox.platform.channels.subscribers(playback_topic(conversation_id)),
               timeout_s=WAIT_S, what="the topics to be removed")
    wait_until(lambda: worker.state.row["state"] == "idle", timeout_s=WAIT_S, what="the listener to be idle")
    assert worker.stats.recorded == len(stream_events(db, first)) + len(events)


def test_dtmf_switches_media_once_per_cooldown(sandbox, calls, control_client, admin, db, start_worker):
    worker = start_worker()
    conversation_id = calls.place_call()
    rule_id = new_rule(control_client, admin, dtmf="1", cooldown_s=600)
    first = play(control_client, admin, conversation_id, LONG_MEDIA)
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the conversation's topics")

    calls.press(conversation_id, "1")
    wait_until(lambda: worker.stats.dtmf == 1, timeout_s=WAIT_S, what="the first press")
    calls.press(conversation_id, "1")
    calls.press(conversation_id, "2")  # no rule for 2
    wait_until(lambda: worker.stats.dtmf == 3, timeout_s=WAIT_S, what="the other presses")
    assert worker.stats.switching == {switching.SWITCHED: 1, switching.COOLING_DOWN: 1, switching.NO_RULE: 1}
    truth = {p["playbackId"]: p for p in calls.truth()}
    assert truth[first]["state"] == "stopped"
    (switched_to,) = [p for p in truth.values() if p["playbackId"] != first]
    assert (switched_to["mediaUrl"], switched_to["state"]) == (OTHER_MEDIA, "started")
    (entry,) = rule_audit(db, rule_id)
    assert (entry.action, entry.subject) == ("playback.switched", f"playback:{switched_to['playbackId']}")
    assert entry.details["trigger"] == {"dtmf": "1"} and entry.details["stopped_playback_id"] == first

    # Once the cooldown has passed, the same key switches again.
    with db.transaction() as connection:
        connection.execute(update(SwitchRuleFiring).values(fired_at=utcnow() - timedelta(seconds=601)))
    calls.press(conversation_id, "1")
    wait_until(lambda: worker.stats.dtmf == 4, timeout_s=WAIT_S, what="the press after the cooldown")
    assert worker.stats.switching[switching.SWITCHED] == 2
    assert len(rule_audit(db, rule_id)) == 2


def test_the_spoken_keyword_switches_once_per_cooldown(sandbox, calls, control_client, admin, db, start_worker):
    worker = start_worker()
    conversation_id = calls.place_call()
    rule_id = new_rule(control_client, admin, keyword="cancel", cooldown_s=600)
    play(control_client, admin, conversation_id, LONG_MEDIA)
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the conversation's topics")

    calls.speak(conversation_id, "I want a cancellation")   # not the whole word
    wait_until(lambda: worker.stats.transcriptions == 1, timeout_s=WAIT_S, what="the first utterance")
    assert worker.stats.switching == {switching.NO_RULE: 1}
    calls.speak(conversation_id, "Please CANCEL my order")
    calls.speak(conversation_id, "cancel!")
    wait_until(lambda: worker.stats.transcriptions == 3, timeout_s=WAIT_S, what="the other utterances")
    assert worker.stats.switching == {switching.NO_RULE: 1, switching.SWITCHED: 1, switching.COOLING_DOWN: 1}
    (entry,) = rule_audit(db, rule_id)
    assert entry.details["trigger"] == {"keyword": "cancel", "transcript": "Please CANCEL my order"}
    assert sorted(p["mediaUrl"] for p in calls.truth()) == sorted([LONG_MEDIA, OTHER_MEDIA])


def test_a_trigger_on_a_quiet_call_switches_nothing(sandbox, calls, control_client, admin, db, start_worker):
    worker = start_worker()
    conversation_id = calls.place_call()
    rule_id = new_rule(control_client, admin, dtmf="5", conversation_id=conversation_id)
    # The rule names the conversation: it is watched although nothing plays.
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the rule's conversation")
    calls.press(conversation_id, "5")
    wait_until(lambda: worker.stats.dtmf == 1, timeout_s=WAIT_S, what="the press")
    assert worker.stats.switching == {switching.NOT_PLAYING: 1}
    assert calls.truth() == [] and rule_audit(db, rule_id) == []


def test_the_worker_keeps_ingesting_across_a_drop_and_a_socket_closing(
        sandbox, calls, control_client, admin, db, start_worker):
    worker = start_worker()
    conversation_id = calls.place_call()
    new_rule(control_client, admin, dtmf="9", conversation_id=conversation_id)  # keeps the call watched
    wait_until(lambda: worker.state.row["connects"] == 1 and subscribed(sandbox, conversation_id),
               timeout_s=WAIT_S, what="the first connection")

    def play_fully_seen():
        playback_id = play(control_client, admin, conversation_id, SHORT_MEDIA)
        wait_until(lambda: ledger_state(db, playback_id) == "completed", timeout_s=WAIT_S, what="completed")
        events = stream_events(db, playback_id)
        assert [e[1] for e in events][0] == "started" and [e[3] for e in events] == list(range(1, len(events) + 1))
        assert events[-1][2] == truth_of(calls, playback_id)["duration"]

    calls.faults(stream_drop_every_s=25.0)  # half a real second after connecting, the socket dies
    wait_until(lambda: worker.state.row["disconnects"] >= 1, timeout_s=WAIT_S, what="the drop")
    calls.faults(stream_drop_every_s=None)
    wait_until(lambda: worker.state.row["state"] == "connected" and subscribed(sandbox, conversation_id),
               timeout_s=WAIT_S, what="the reconnect")
    assert "ConnectionClosed" in worker.state.row["last_reason"]
    play_fully_seen()

    connects = worker.state.row["connects"]
    calls.faults(socket_closing_now=True)
    wait_until(lambda: worker.state.row["connects"] > connects and worker.state.row["state"] == "connected",
               timeout_s=WAIT_S, what="the move to a new channel")
    assert worker.state.row["last_reason"] == "socket closing"
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the resubscription")
    play_fully_seen()
    assert worker.stats.failures == 0


def test_the_listener_state_is_served(sandbox, calls, control_client, admin, start_worker):
    worker = start_worker(shard=Shard(0, 1))
    conversation_id = calls.place_call()
    new_rule(control_client, admin, dtmf="9", conversation_id=conversation_id)
    wait_until(lambda: worker.state.row["state"] == "connected", timeout_s=WAIT_S, what="the connection")
    listeners = control_client.get("/api/v1/stream", headers=admin).json["listeners"]
    wait_until(lambda: control_client.get("/api/v1/stream", headers=admin).json["listeners"][0]["state"] == "connected",
               timeout_s=WAIT_S, what="the stored state")
    (listener,) = control_client.get("/api/v1/stream", headers=admin).json["listeners"]
    assert (listener["shard"], listener["channels_connected"], listener["topics"]) == ("0/1", 1, 3)
    assert listeners


def test_the_worker_survives_rate_limiting(sandbox, calls, control_client, admin, db, start_worker):
    calls.faults(rate_limit_every=3)
    worker = start_worker(max_retry_after_s=0.05)
    conversation_id = calls.place_call()
    new_rule(control_client, admin, dtmf="9", conversation_id=conversation_id)
    wait_until(lambda: worker.state.row["state"] == "connected" and subscribed(sandbox, conversation_id),
               timeout_s=WAIT_S, what="a connection despite 429s")
    calls.faults(rate_limit_every=None)
    playback_id = play(control_client, admin, conversation_id, SHORT_MEDIA)
    wait_until(lambda: ledger_state(db, playback_id) == "completed", timeout_s=WAIT_S, what="completed")


def test_shards_split_the_conversations(db, calls, control_client, admin):
    conversations = [calls.place_call() for _ in range(12)]
    for conversation_id in conversations:
        new_rule(control_client, admin, dtmf="9", conversation_id=conversation_id)
    shares = [watched_conversations(db, Shard(index, 3)) for index in range(3)]
    assert sorted(c for share in shares for c in share) == sorted(conversations)
    assert all(share for share in shares)
    assert watched_conversations(db, Shard()) == set(conversations)


@pytest.mark.parametrize("text", ["1", "1/0", "2/2", "-1/2", "a/b", "0/2/3"])
def test_bad_shards_are_refused(text):
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)


def test_a_quiet_listener_keeps_its_row_fresh_for_metrics(start_worker, control_app, control_client):
    start_worker(keep_alive_s=0.1)
    db = control_app.extensions["billing_sync"].db
    seen: dict[tuple, set] = {}

    def rewritten_unchanged() -> bool:
        with db.read() as session:
            row = session.scalar(select(StreamListener))
        if row is None:
            return False
        same = (row.state, row.topics, row.connects, row.disconnects, row.channels_connected)
        seen.setdefault(same, set()).add(row.updated_at)
        return len(seen[same]) >= 3

    wait_until(rewritten_unchanged, timeout_s=WAIT_S, what="keep-alive writes of an unchanged row")
    with db.read() as session:
        row = session.scalar(select(StreamListener))
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    metrics = scrape(control_client)
    assert metrics.value("billing_sync_stream_listener_updated_timestamp_seconds", shard="0/1") >= updated.timestamp()

"""Playback lifecycles: started → progress* → exactly one of completed/stopped/failed,
driven on the sandbox clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .clock import Clock, iso_ms
from .errors import GenesysError
from .events import PLAYBACK_EVENT_TYPE, Publisher, playback_topic
from .media import Media
from .org import Org, Playback
from .randomness import SeededStream
from .scheduler import Scheduler

PROGRESS_EVERY_MS = 5_000
FETCH_FAILS_AFTER_MS = 500


def natural_end(media: Media, loop: bool, max_duration_s: int | None) -> tuple[int | None, str]:
    """When (ms after start) and how a playback ends if nobody stops it; None = never."""
    ends: list[tuple[int, int, str]] = []  # (ms, tie-break, state): completed wins a tie
    if media.fetch_fails:
        return FETCH_FAILS_AFTER_MS, "failed"
    if not loop:
        ends.append((media.length_ms, 0, "completed"))
    if max_duration_s is not None:
        ends.append((max_duration_s * 1000, 0, "completed"))
    if media.fail_after_ms is not None:
        ends.append((media.fail_after_ms, 1, "failed"))
    if not ends:
        return None, "completed"
    end_ms, _, state = min(ends)
    return end_ms, state


class PlaybackLifecycle:
    """Starts and stops playbacks and emits their events at the right sandbox instants."""

    def __init__(self, org: Org, clock: Clock, scheduler: Scheduler, publisher: Publisher,
                 ids: SeededStream) -> None:
        self._org = org
        self._clock = clock
        self._scheduler = scheduler
        self._publisher = publisher
        self._ids = ids

    def play(self, conversation_id: str, media: Media, loop: bool,
             max_duration_s: int | None) -> Playback:
        """Start media on a call, stopping whatever it was playing; raises 404/409."""
        with self._org.locked() as org:
            conversation = org.conversations.get(conversation_id)
            if conversation is None:
                raise GenesysError(404, "not.found",
                                   f"Unable to find a conversation with id {conversation_id}")
            if not conversation.playable:
                raise GenesysError(409, "conversation.not.connected",
                                   f"Conversation {conversation_id} has no connected customer")
            now = self._clock.now()
            self._stop_running(conversation_id, now)
            end_ms, end_state = natural_end(media, loop, max_duration_s)
            playback = Playback(id=self._ids.uuid(), conversation_id=conversation_id,
                                media=media, loop=loop, max_duration_s=max_duration_s,
                                started_at=now, end_ms=end_ms, end_state=end_state)
            org.add_playback(playback)
            self._emit(playback, "started", 0, now)
            self._schedule_next(playback, 0)
            return playback

    def stop(self, conversation_id: str) -> Playback:
        """Stop the running playback of a call; 404 when nothing is playing."""
        with self._org.locked() as org:
            if conversation_id not in org.conversations:
                raise GenesysError(404, "not.found",
                                   f"Unable to find a conversation with id {conversation_id}")
            playback = self._stop_running(conversation_id, self._clock.now())
            if playback is None:
                raise GenesysError(404, "not.found",
                                   f"Nothing is playing on conversation {conversation_id}")
            return playback

    def stop_for_disconnect(self, conversation_id: str, at: datetime) -> None:
        """The call ended: its running playback ends `stopped`."""
        with self._org.locked():
            self._stop_running(conversation_id, at)

    def _stop_running(self, conversation_id: str, at: datetime) -> Playback | None:
        playback_id = self._org.active.get(conversation_id)
        if playback_id is None:
            return None
        playback = self._org.playbacks[playback_id]
        self._finish(playback, "stopped", playback.played_ms(at), at)
        return playback

    def _schedule_next(self, playback: Playback, after_ms: int) -> None:
        next_tick = after_ms + PROGRESS_EVERY_MS
        if playback.end_ms is not None and playback.end_ms <= next_tick:
            at_ms, kind = playback.end_ms, "end"
        else:
            at_ms, kind = next_tick, "progress"
        when = playback.started_at + timedelta(milliseconds=at_ms)
        self._scheduler.call_at(when, lambda: self._tick(playback.id, at_ms, kind, when))

    def _tick(self, playback_id: str, at_ms: int, kind: str, when: datetime) -> None:
        with self._org.locked() as org:
            playback = org.playbacks[playback_id]
            if playback.terminal:
                return
            if kind == "end":
                self._finish(playback, playback.end_state, playback.played_ms(when), when)
                return
            self._emit(playback, "progress", at_ms, when)
            self._schedule_next(playback, at_ms)

    def _finish(self, playback: Playback, state: str, duration_ms: int, at: datetime) -> None:
        playback.ended_at = at
        if self._org.active.get(playback.conversation_id) == playback.id:
            del self._org.active[playback.conversation_id]
        self._emit(playback, state, duration_ms, at)

    def _emit(self, playback: Playback, state: str, duration_ms: int, at: datetime) -> None:
        playback.sequence += 1
        playback.state = state
        playback.duration_ms = duration_ms
        event: dict[str, Any] = {
            "id": self._ids.uuid(),
            "eventType": PLAYBACK_EVENT_TYPE,
            "conversationId": playback.conversation_id,
            "playbackId": playback.id,
            "state": state,
            "duration": duration_ms,
            "sequence": playback.sequence,
            "mediaUrl": playback.media.url,
            "timestamp": iso_ms(at),
        }
        playback.event_ids.append(event["id"])
        self._publisher.publish(playback_topic(playback.conversation_id), event,
                                PLAYBACK_EVENT_TYPE)


def play_response(playback: Playback) -> dict[str, Any]:
    """The 202 body of POST …/actions/play."""
    return {"id": playback.id, "conversationId": playback.conversation_id, "state": "started",
            "mediaUrl": playback.media.url, "loop": playback.loop,
            "maxDuration": playback.max_duration_s, "selfUri": playback_uri(playback)}


def playback_view(playback: Playback, at: datetime) -> dict[str, Any]:
    """A playback as GET …/playbacks/{id} shows it."""
    return {**play_response(playback), "state": playback.state,
            "duration": playback.played_ms(at), "sequence": playback.sequence,
            "startTime": iso_ms(playback.started_at),
            "endTime": iso_ms(playback.ended_at) if playback.ended_at else None}


def playback_uri(playback: Playback) -> str:
    return f"/api/v2/conversations/voice/{playback.conversation_id}/playbacks/{playback.id}"

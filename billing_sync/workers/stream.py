"""`billing-sync stream`: watch live calls on the Genesys event stream.

The worker subscribes the playback, DTMF and transcription topics of every conversation
it watches: those with a non-terminal playback in the ledger, and those an active
switching rule names. It re-reads that set every `refresh_s` seconds (at once when a
playback ends) and adds or removes topics to match. With `--shard i/N` it watches only
the conversations whose id hashes to shard i, so N listeners split the work.

- Playback events are stored as ledger evidence with source `stream`: deduplicated like
  webhook deliveries, they may move a playback's state but never bill
  (`record_stream_evidence` is the one call into ingest).
- DTMF and final transcripts go to the switching rules (`playback.switching`).
- Drops, `socket_closing`, expired tokens and 429s are the stream's to survive
  (`genesys.stream`); this worker logs each connection change and keeps the shard's state
  in `stream_listeners` (served at GET /api/v1/stream).
- `stop()` (SIGTERM, SIGINT) lets the event in hand finish, closes the channels and
  returns; the command then exits 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from ..db import Database
from ..genesys.client import GenesysClient
from ..genesys.errors import GenesysError
from ..genesys.events import (
    Dtmf, StreamConnected, StreamDisconnected, Transcription, dtmf_topic, playback_topic, transcription_topic,
)
from ..genesys.stream import NotificationStream
from ..ledger.events import ReceivedEvent
from ..ledger.ingest import IngestResult, record_events
from ..logs import get_logger
from ..models import Playback, StreamListener, utcnow
from ..playback.rules import rule_conversations
from ..playback.switching import Switcher

STREAM_SOURCE = "stream"
DEFAULT_REFRESH_S = 2.0
# How long a conversation stays subscribed after it stopped qualifying: the next playback's
# row may not be written yet when the last one ends (a switch), and late events still come.
DEFAULT_LINGER_S = 30.0
# The shard's row is rewritten at least this often, so its `updated_at` (and /metrics) tells a live
# listener from one that was killed without a word.
KEEP_ALIVE_S = 30.0
# Not terminal; IN (not NOT IN) so the state index serves the query.
ACTIVE_STATES = ("requested", "started", "progress")
log = get_logger("billing_sync.workers.stream")


@dataclass(frozen=True, slots=True)
class Shard:
    """This listener's share of the conversations: those whose id hashes to `index` mod `count`."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/N` with 0 <= i < N; ValueError otherwise."""
        index, slash, count = text.strip().partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise ValueError(f"shard must look like i/N (e.g. 0/2), got {text!r}") from None
        if not slash or shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(f"shard must be i/N with 0 <= i < N, got {text!r}")
        return shard

    def owns(self, conversation_id: str) -> bool:
        digest = hashlib.sha256(conversation_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class WorkerStats:
    """What the worker has done since it started (logs, tests)."""

    recorded: int = 0
    duplicates: int = 0
    dtmf: int = 0
    transcriptions: int = 0
    switching: Counter = field(default_factory=Counter)
    failures: int = 0


def record_stream_evidence(connection: Connection, received: list[ReceivedEvent]) -> IngestResult:
    """Store playback events seen on the stream: evidence with source `stream`, never billed."""
    return record_events(connection, received, source=STREAM_SOURCE)


def watched_conversations(db: Database, shard: Shard) -> set[str]:
    """This shard's conversations with a non-terminal playback or an active rule naming them."""
    with db.read() as session:
        playing = set(session.scalars(
            select(Playback.conversation_id).where(Playback.state.in_(ACTIVE_STATES)).distinct()
        ))
        named = rule_conversations(session)
    return {conversation_id for conversation_id in playing | named if shard.owns(conversation_id)}


def topics_for(conversation_ids: set[str]) -> set[str]:
    return {topic for c in conversation_ids for topic in (playback_topic(c), dtmf_topic(c), transcription_topic(c))}


class ListenerState:
    """The shard's connection state, logged on every change and kept in `stream_listeners`."""

    def __init__(self, db: Database, shard: Shard) -> None:
        self._db = db
        self.row: dict[str, Any] = {
            "shard": str(shard), "state": "starting", "channels_connected": 0, "topics": 0, "connects": 0,
            "disconnects": 0, "last_reason": None, "host": socket.gethostname()[:255], "pid": os.getpid(),
            "started_at": utcnow(),
        }
        self.channels: set[str | None] = set()
        self._written_at = time.monotonic()
        # One write at a time, each of the row as it is then: a keep-alive never lands after a newer state.
        self._lock = threading.Lock()

    def change(self, **values: Any) -> None:
        with self._lock:
            self.row.update(values)
            self.row["channels_connected"] = len(self.channels)
            if self.row["state"] not in ("stopped", "failed"):
                self.row["state"] = self._connection_state()
            log.info("stream.state", **{k: self.row[k] for k in ("shard", "state", "channels_connected", "topics",
                                                                 "connects", "disconnects", "last_reason")})
            self._write()

    def keep_alive_due(self, every_s: float) -> bool:
        return time.monotonic() - self._written_at >= every_s

    def keep_alive(self) -> None:
        """Write the row again unchanged: a fresh `updated_at` says the shard is alive (a killed one stops)."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        with self._db.write() as session:
            session.merge(StreamListener(**self.row, updated_at=utcnow()))
        self._written_at = time.monotonic()

    def _connection_state(self) -> str:
        if self.row["topics"] == 0:
            return "idle"
        if self.channels:
            return "connected"
        return "disconnected" if self.row["connects"] else "connecting"


class StreamWorker:
    """One listener shard: keeps the subscriptions right, stores evidence, applies switching rules."""

    def __init__(
        self, db: Database, genesys: GenesysClient, switcher: Switcher, *, shard: Shard = Shard(),
        refresh_s: float = DEFAULT_REFRESH_S, linger_s: float = DEFAULT_LINGER_S,
        keep_alive_s: float = KEEP_ALIVE_S, stream_options: dict[str, Any] | None = None,
    ) -> None:
        self._db = db
        self._genesys = genesys
        self._switcher = switcher
        self.shard = shard
        self._refresh_s = refresh_s
        self._linger_s = linger_s
        self._keep_alive_s = keep_alive_s
        # Conversations no longer qualifying, and when (loop time) they stop being watched.
        self._lingering: dict[str, float] = {}
        self._watched: set[str] = set()
        self._stream_options = stream_options or {}
        self.stats = WorkerStats()
        self.state = ListenerState(db, shard)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._refresh_now: asyncio.Event | None = None
        self._topics_announced = False

    def stop(self) -> None:
        """Ask the worker to finish the event in hand and return; safe from any thread or signal handler."""
        self._stop_requested.set()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> None:
        """Listen until `stop()`; raises only what the stream cannot survive (401/403/400 from Genesys)."""
        self._loop = asyncio.get_running_loop()
        self._stop, self._refresh_now = asyncio.Event(), asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        await asyncio.to_thread(self.state.change)
        stream = NotificationStream(self._genesys, (), **self._stream_options)
        final_state = "stopped"
        try:
            async with stream:
                await self._refresh(stream)
                refresher = asyncio.create_task(self._refresh_forever(stream), name="stream-topics")
                try:
                    await self._consume(stream)
                finally:
                    refresher.cancel()
                    await asyncio.gather(refresher, return_exceptions=True)
        except BaseException as error:
            final_state = "failed"
            log.error("stream.failed", shard=str(self.shard), error=str(error)[:300])
            raise
        finally:
            self.state.channels.clear()
            await asyncio.to_thread(self.state.change, state=final_state)

    async def _consume(self, stream: NotificationStream) -> None:
        stopping = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                following = asyncio.create_task(anext(stream))
                await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                    return
                try:
                    event = following.result()
                except StopAsyncIteration:
                    return
                await self._handle(event)  # finishes even when stop() arrives meanwhile
        finally:
            stopping.cancel()

    async def _handle(self, event: Any) -> None:
        try:
            if isinstance(event, ReceivedEvent):
                await asyncio.to_thread(self._record, event)
            elif isinstance(event, Dtmf):
                self.stats.switching[await asyncio.to_thread(self._switcher.on_dtmf, event)] += 1
                self.stats.dtmf += 1  # counted once handled: a reader sees its outcome too
            elif isinstance(event, Transcription):
                self.stats.switching[await asyncio.to_thread(self._switcher.on_transcription, event)] += 1
                self.stats.transcriptions += 1
            elif isinstance(event, StreamConnected):
                self.state.channels.add(event.channel_id)
                await asyncio.to_thread(self.state.change, connects=self.state.row["connects"] + 1)
            elif isinstance(event, StreamDisconnected):
                self.state.channels.discard(event.channel_id)
                await asyncio.to_thread(self.state.change, disconnects=self.state.row["disconnects"] + 1,
                                        last_reason=event.reason[:300])
        except Exception:  # one event must not stop the listener; reconciliation fills any gap
            self.stats.failures += 1
            log.exception("stream.event_failed", kind=type(event).__name__)

    def _record(self, event: ReceivedEvent) -> None:
        with self._db.transaction() as connection:
            result = record_stream_evidence(connection, [event])
        self.stats.recorded += result.accepted
        self.stats.duplicates += result.duplicates
        if result.ended:
            # A playback ended: its conversation may no longer need watching.
            self._loop.call_soon_threadsafe(self._refresh_now.set)

    async def _refresh_forever(self, stream: NotificationStream) -> None:
        while True:
            try:
                await asyncio.wait_for(self._refresh_now.wait(), self._refresh_s)
            except TimeoutError:
                pass
            self._refresh_now.clear()
            try:
                if self.state.keep_alive_due(self._keep_alive_s):
                    await asyncio.to_thread(self.state.keep_alive)
                await self._refresh(stream)
            except (GenesysError, OSError) as error:
                log.warning("stream.topics_not_updated", error=str(error)[:300])
            except Exception:
                log.exception("stream.topics_not_updated")

    async def _refresh(self, stream: NotificationStream) -> None:
        """Subscribe exactly the topics of the conversations this shard watches now."""
        conversations = self._with_lingering(await asyncio.to_thread(watched_conversations, self._db, self.shard))
        topics = topics_for(conversations)
        changed = topics != stream.topics
        await stream.set_topics(topics)  # also re-sends a subscription that failed before
        if changed or not self._topics_announced:
            self._topics_announced = True
            log.info("stream.topics", shard=str(self.shard), conversations=len(conversations), topics=len(topics))
            await asyncio.to_thread(self.state.change, topics=len(topics))


    def _with_lingering(self, qualifying: set[str]) -> set[str]:
        """`qualifying` plus the conversations that stopped qualifying less than `linger_s` ago."""
        now = self._loop.time()
        for conversation_id in self._watched - qualifying:
            self._lingering.setdefault(conversation_id, now + self._linger_s)
        for conversation_id in qualifying:
            self._lingering.pop(conversation_id, None)
        self._lingering = {c: until for c, until in self._lingering.items() if until > now}
        self._watched = qualifying | set(self._lingering)
        return self._watched


def run_until_signalled(worker: StreamWorker) -> None:
    """Run the worker until SIGTERM or SIGINT; then it finishes what is in hand and this returns."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    asyncio.run(main())

"""The notification stream (§8) as an async iterator of typed events that never gives up.

    async with NotificationStream(client, topics) as stream:
        async for event in stream:        # ReceivedEvent | Dtmf | Transcription |
            ...                           # StreamConnected | StreamDisconnected
        await stream.set_topics(more)     # from any task: the desired set, applied in place

One channel per `max_topics_per_channel` (1,000) topics, each looked after by its own
task: create the channel, connect its WebSocket, subscribe (PUT, so a topic is never
subscribed twice), read. No message for two heartbeat intervals, a dropped socket, a
`v2.system.socket_closing` notice or a channel close to `expires` each lead to a
reconnect with a freshly fetched token; failed reconnects back off exponentially with
jitter, up to a cap. Only a refusal that retrying cannot fix (401, 403, 400) ends the
stream, raised from `__anext__`. REST calls go through the sync client in a thread, so
auth and retries behave exactly as everywhere else.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import connect as websocket_connect

from ..logs import get_logger
from .client import GenesysClient
from .errors import BadRequest, Forbidden, GenesysError, NotFound, Unauthorized
from .events import StreamConnected, StreamDisconnected, StreamEvent, parse_message
from .models import Channel
from .schemas import MAX_TOPICS_PER_CHANNEL

# Retrying cannot fix these: wrong credentials, a missing scope, a request we got wrong.
FATAL_ERRORS = (Unauthorized, Forbidden, BadRequest)
RECONNECT_ERRORS = (GenesysError, OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException)
PING = json.dumps({"message": "ping"})
RENEWAL = "channel renewal"
SOCKET_CLOSING = "socket closing"
# Reconnects Genesys Cloud asked for or the calendar forced: no backoff before them.
PLANNED_RECONNECTS = frozenset({RENEWAL, SOCKET_CLOSING})
log = get_logger("billing_sync.genesys.stream")


class WebSocket(Protocol):
    async def recv(self) -> str | bytes: ...
    async def send(self, message: str) -> None: ...


Connect = Callable[[str], AbstractAsyncContextManager[WebSocket]]
_END = object()


@dataclass(eq=False)
class _Failure:
    error: BaseException


@dataclass(eq=False)
class _Slot:
    """One channel's share of the topics, and the task that keeps it connected."""

    topics: set[str] = field(default_factory=set)
    channel: Channel | None = None
    renew_at: datetime | None = None
    task: asyncio.Task | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The last PUT of this slot's topics failed: the next set_topics sends it again.
    stale: bool = False


class NotificationStream:
    """Typed events from Genesys Cloud notification channels, across reconnects."""

    def __init__(
        self,
        client: GenesysClient,
        topics: Iterable[str] = (),
        *,
        heartbeat_interval_s: float = 30.0,
        renew_before_s: float = 600.0,
        reconnect_backoff_base_s: float = 0.5,
        reconnect_backoff_cap_s: float = 30.0,
        max_topics_per_channel: int = MAX_TOPICS_PER_CHANNEL,
        queue_size: int = 10_000,
        connect: Connect | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= max_topics_per_channel <= MAX_TOPICS_PER_CHANNEL:
            raise ValueError(f"max_topics_per_channel must be within 1..{MAX_TOPICS_PER_CHANNEL}")
        self.client = client
        self.heartbeat_interval_s = heartbeat_interval_s
        self.renew_before_s = renew_before_s
        self.reconnect_backoff_base_s = reconnect_backoff_base_s
        self.reconnect_backoff_cap_s = reconnect_backoff_cap_s
        self.max_topics_per_channel = max_topics_per_channel
        self._connect = connect or functools.partial(
            websocket_connect, ping_interval=None, open_timeout=10, close_timeout=2, max_size=2**22,
        )
        self._now = now
        self._random = rng or random.Random()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._slots: list[_Slot] = []
        self._desired: frozenset[str] = frozenset()
        self._started = False
        self._closed = False
        self._assign(set(topics))

    @property
    def topics(self) -> frozenset[str]:
        """The topics the stream is meant to be subscribed to."""
        return self._desired

    @property
    def channel_ids(self) -> list[str]:
        """The ids of the channels currently in use (for logs and tests)."""
        return [slot.channel.id for slot in self._slots if slot.channel is not None]

    async def __aenter__(self) -> NotificationStream:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed:
            raise StopAsyncIteration
        self.start()
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            await self.aclose()
            raise item.error
        return item

    def start(self) -> None:
        """Start connecting (iterating or `async with` do it too)."""
        if self._started or self._closed:
            return
        self._started = True
        for slot in self._slots:
            self._launch(slot)

    async def set_topics(self, topics: Iterable[str]) -> None:
        """Make the subscribed topics exactly `topics`; connected channels are updated before this returns."""
        changed = self._assign(set(topics))
        changed += [slot for slot in self._slots if slot.stale and slot not in changed]
        for slot in changed:
            if slot.topics:
                await self._subscribe(slot)
        for slot in [slot for slot in self._slots if not slot.topics]:
            self._slots.remove(slot)
            await self._retire(slot, forget=True)
        if self._started:
            for slot in self._slots:
                if slot.task is None:
                    self._launch(slot)

    async def aclose(self) -> None:
        """Stop every channel task, close their sockets and end the iteration."""
        if self._closed:
            return
        self._closed = True
        slots, self._slots = self._slots, []
        for slot in slots:
            # No REST calls here: closing must be quick even when Genesys is unreachable, and
            # an unconnected channel's subscriptions deliver nothing.
            await self._retire(slot, forget=False)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)

    def reconnect_delay(self, failures: int) -> float:
        """Seconds to wait after `failures` reconnects in a row failed: capped exponential with jitter."""
        ceiling = min(self.reconnect_backoff_cap_s, self.reconnect_backoff_base_s * 2 ** (failures - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    # --- topics to channels -----------------------------------------------------------

    def _assign(self, desired: set[str]) -> list[_Slot]:
        """Spread `desired` over the slots, moving as few topics as possible; the slots changed."""
        self._desired = frozenset(desired)
        changed: list[_Slot] = []
        for slot in self._slots:
            if slot.topics - desired:
                slot.topics &= desired
                changed.append(slot)
        placed = set().union(*(slot.topics for slot in self._slots))
        waiting = sorted(desired - placed)
        for slot in self._slots:
            room = self.max_topics_per_channel - len(slot.topics)
            if waiting and room > 0:
                slot.topics.update(waiting[:room])
                waiting = waiting[room:]
                if slot not in changed:
                    changed.append(slot)
        while waiting:
            slot = _Slot(topics=set(waiting[: self.max_topics_per_channel]))
            waiting = waiting[self.max_topics_per_channel :]
            self._slots.append(slot)
        return changed

    # --- one channel's life -----------------------------------------------------------

    def _launch(self, slot: _Slot) -> None:
        slot.task = asyncio.create_task(self._keep_connected(slot), name="genesys-notification-channel")

    async def _keep_connected(self, slot: _Slot) -> None:
        failures = 0
        first = True
        while not self._closed:
            connected_at: float | None = None
            reason = "connection failed"
            try:
                if not first:
                    # A long-lived stream must not reconnect on a token that is about to lapse.
                    await asyncio.to_thread(self.client.refresh_token)
                first = False
                channel = await self._usable_channel(slot)
                async with self._connect(channel.connect_uri) as socket:
                    await self._subscribe(slot, missing_ok=False)
                    connected_at = asyncio.get_running_loop().time()
                    await self._emit(StreamConnected(channel_id=channel.id, topics=len(slot.topics)))
                    reason = await self._read(slot, socket, channel)
            except asyncio.CancelledError:
                raise
            except FATAL_ERRORS as error:
                log.error("genesys.stream.refused", error=str(error))
                await self._emit(_Failure(error))
                return
            except RECONNECT_ERRORS as error:
                reason = f"{type(error).__name__}: {error}"[:300]
            except Exception as error:  # a bug: surface it rather than leave the iterator waiting
                log.exception("genesys.stream.crashed")
                await self._emit(_Failure(error))
                return
            if self._closed:
                return
            failures = self._count_failure(failures, connected_at, planned=reason in PLANNED_RECONNECTS)
            if connected_at is not None:
                # Only the end of a connection opens a gap; failed attempts just extend it.
                channel_id = slot.channel.id if slot.channel else None
                await self._emit(StreamDisconnected(channel_id=channel_id, reason=reason))
            log.warning("genesys.stream.disconnected", reason=reason, failures=failures)
            if failures:
                await asyncio.sleep(self.reconnect_delay(failures))

    def _count_failure(self, failures: int, connected_at: float | None, *, planned: bool) -> int:
        """Reconnect attempts failed in a row, counting this one; 0 after a healthy connection."""
        if connected_at is None:
            return failures + 1
        if planned:
            return 0
        # A socket that dies right after connecting counts as failed too, so a flapping
        # server meets a growing backoff instead of a reconnect storm.
        lived = asyncio.get_running_loop().time() - connected_at
        return 0 if lived >= min(1.0, self.heartbeat_interval_s) else failures + 1

    async def _usable_channel(self, slot: _Slot) -> Channel:
        """The slot's channel if Genesys still has it and it is not due for renewal, else a new one."""
        current = slot.channel
        if current is not None and slot.renew_at is not None and self._now() < slot.renew_at:
            if await asyncio.to_thread(self.client.channel_exists, current.id):
                return current
        slot.channel = None
        if current is not None:
            await self._forget(current)
        channel = await asyncio.to_thread(self.client.create_channel)
        slot.channel, slot.renew_at = channel, self._renewal_time(channel)
        log.info("genesys.stream.channel", channel_id=channel.id, expires=channel.expires.isoformat())
        return channel

    async def _subscribe(self, slot: _Slot, *, missing_ok: bool = True) -> None:
        """PUT the slot's topics on its channel (under a lock: set_topics and reconnects race)."""
        async with slot.lock:
            channel = slot.channel
            if channel is None:
                return  # the channel task subscribes when it has one
            topics = sorted(slot.topics)
            try:
                granted = await asyncio.to_thread(self.client.replace_subscriptions, channel.id, topics)
            except NotFound:
                if not missing_ok:
                    raise
                return  # the channel is gone; its task finds out and makes another
            except BaseException:
                slot.stale = True
                raise
            slot.stale = False
            refused = [s.topic for s in granted if s.state not in (None, "Permitted")]
            if refused:
                log.warning("genesys.stream.topics_refused", count=len(refused), first=refused[0])

    async def _read(self, slot: _Slot, socket: WebSocket, channel: Channel) -> str:
        """Deliver the socket's events until it must be replaced; the reason it must."""
        pinger = asyncio.create_task(self._ping(socket))
        renew_at = slot.renew_at or self._renewal_time(channel)
        try:
            while True:
                seconds_to_renewal = (renew_at - self._now()).total_seconds()
                if seconds_to_renewal <= 0:
                    return RENEWAL
                timeout = min(2 * self.heartbeat_interval_s, seconds_to_renewal)
                try:
                    # Not wait_for: on 3.11 it swallows a cancel that lands as a message arrives.
                    async with asyncio.timeout(timeout):
                        raw = await socket.recv()
                except TimeoutError:
                    if (renew_at - self._now()).total_seconds() <= 0:
                        continue
                    return "no heartbeat"
                message = parse_message(raw)
                if message is None:
                    continue
                if message.is_socket_closing:
                    slot.renew_at = None  # this channel is finished: the next connect makes another
                    return SOCKET_CLOSING
                if message.event is not None and message.topic in slot.topics:
                    await self._emit(message.event)
        finally:
            pinger.cancel()

    async def _ping(self, socket: WebSocket) -> None:
        # A pong is a message too: a quiet but healthy channel never trips the watchdog.
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                await socket.send(PING)
            except Exception:  # the reader notices the broken socket and reconnects
                return

    def _renewal_time(self, channel: Channel) -> datetime:
        lifetime = (channel.expires - self._now()).total_seconds()
        margin = min(self.renew_before_s, max(lifetime, 0) / 2)
        return channel.expires - timedelta(seconds=margin)

    async def _forget(self, channel: Channel) -> None:
        # Best effort: an abandoned channel should not keep topics that another one now holds.
        try:
            await asyncio.to_thread(self.client.delete_subscriptions, channel.id)
        except GenesysError:
            pass

    async def _retire(self, slot: _Slot, *, forget: bool) -> None:
        if slot.task is not None:
            slot.task.cancel()
            await asyncio.gather(slot.task, return_exceptions=True)
            slot.task = None
        channel, slot.channel = slot.channel, None
        if channel is not None and forget:
            await self._forget(channel)

    async def _emit(self, item: Any) -> None:
        await self._queue.put(item)

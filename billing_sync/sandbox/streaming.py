"""The Notifications WebSocket (contract §8): one socket per channel, heartbeats, ping/pong,
maintenance notice, drop fault; nothing is kept for a channel that is not connected."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .channels import ChannelRegistry
from .faults import FaultSettings

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 30.0
CLOSE_AFTER_NOTICE_S = 1.0
_DROP_POLL_S = 0.02
HEARTBEAT = {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
PONG = {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}
SOCKET_CLOSING = {"topicName": "v2.system.socket_closing",
                  "eventBody": {"message": "The socket is closing for maintenance; "
                                           "create a new channel and reconnect."}}


@dataclass
class _Link:
    """One live socket and its outgoing queue."""

    channel_id: str
    socket: ServerConnection
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class StreamHub:
    """Serves channel sockets on its own event-loop thread; `publish` is thread-safe."""

    def __init__(self, channels: ChannelRegistry, faults: FaultSettings, time_scale: float) -> None:
        self._channels = channels
        self._faults = faults
        self._time_scale = time_scale
        self._links: dict[str, _Link] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-stream",
                                        daemon=True)
        self._server: Server | None = None
        self.port = 0
        channels.on_removed = self.disconnect

    def start(self) -> int:
        """Listen on a loopback port of its choosing; return the port."""
        self._thread.start()
        self._server = self._call(self._listen())
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            server = self._server
            self._call(self._shutdown(server))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def connect_uri(self, channel_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/channels/{channel_id}"

    def publish(self, topic: str, notification: dict[str, Any]) -> None:
        """Send a notification to every connected channel subscribed to its topic."""
        targets = self._channels.subscribers(topic)
        if targets:
            text = json.dumps(notification, separators=(",", ":"))
            self._loop.call_soon_threadsafe(self._send_to, targets, text)

    def announce_closing(self) -> None:
        """Maintenance: tell every socket it is closing, then close it."""
        self._loop.call_soon_threadsafe(self._close_all_with_notice)

    def disconnect(self, channel_id: str) -> None:
        """The channel is gone: close its socket, if any."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._close_link, channel_id, 1000, "channel removed")

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> Server:
        return await serve(self._serve, "127.0.0.1", 0, process_request=self._check_channel)

    async def _shutdown(self, server: Server) -> None:
        server.close(close_connections=True)
        await server.wait_closed()

    def _check_channel(self, connection: ServerConnection, request: Request) -> Response | None:
        channel_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        if not request.path.startswith("/channels/") or self._channels.get(channel_id) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown or expired channel\n")
        return None

    async def _serve(self, socket: ServerConnection) -> None:
        channel_id = socket.request.path.rstrip("/").rsplit("/", 1)[-1]
        self._close_link(channel_id, 4000, "another connection opened on this channel")
        link = _Link(channel_id, socket)
        self._links[channel_id] = link
        self._channels.set_connected(channel_id, True)
        link.tasks = [asyncio.create_task(self._send_outbox(link)),
                      asyncio.create_task(self._heartbeat(link)),
                      asyncio.create_task(self._drop_when_due(link))]
        try:
            async for message in socket:
                if _is_ping(message):
                    link.outbox.put_nowait(json.dumps(PONG))
        except ConnectionClosed:
            pass
        finally:
            for task in link.tasks:
                task.cancel()
            if self._links.get(channel_id) is link:
                del self._links[channel_id]
                self._channels.set_connected(channel_id, False)

    def _send_to(self, channel_ids: list[str], text: str) -> None:
        for channel_id in channel_ids:
            link = self._links.get(channel_id)
            if link is not None:
                link.outbox.put_nowait(text)

    async def _send_outbox(self, link: _Link) -> None:
        try:
            while True:
                await link.socket.send(await link.outbox.get())
        except ConnectionClosed:
            pass

    async def _heartbeat(self, link: _Link) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S / self._time_scale)
            link.outbox.put_nowait(json.dumps(HEARTBEAT))

    async def _drop_when_due(self, link: _Link) -> None:
        connected_at = self._loop.time()
        while True:
            await asyncio.sleep(_DROP_POLL_S)
            every = self._faults.current().stream_drop_every_s
            if every is not None and self._loop.time() - connected_at >= every / self._time_scale:
                transport = link.socket.transport
                if transport is not None:
                    transport.abort()  # a network drop: no close frame
                return

    def _close_all_with_notice(self) -> None:
        for link in list(self._links.values()):
            link.outbox.put_nowait(json.dumps(SOCKET_CLOSING))
            self._loop.call_later(CLOSE_AFTER_NOTICE_S / self._time_scale,
                                  self._close_link, link.channel_id, 1001, "socket closing",
                                  link)

    def _close_link(self, channel_id: str, code: int, reason: str,
                    only: _Link | None = None) -> None:
        link = self._links.get(channel_id)
        if link is None or (only is not None and link is not only):
            return
        del self._links[channel_id]
        self._channels.set_connected(channel_id, False)
        for task in link.tasks:
            task.cancel()
        asyncio.ensure_future(link.socket.close(code, reason), loop=self._loop)


def _is_ping(message: str | bytes) -> bool:
    try:
        data = json.loads(message)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("message") == "ping"

"""A scripted notifications service for the stream's unit tests: channel REST routes on the
ScriptedOrg and in-memory WebSockets, so each fault (silence, drop, socket_closing, expiry,
refused connects) can be produced exactly when a test wants it."""

from __future__ import annotations

import asyncio
import itertools
import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from websockets.exceptions import ConnectionClosedError

from .conftest import ScriptedOrg, genesys_error, json_of

CHANNELS = r"/api/v2/notifications/channels"
SUBSCRIPTIONS = r"/api/v2/notifications/channels/[^/]+/subscriptions"


class FakeSocket:
    """The client's end of one WebSocket; the test pushes messages into it or breaks it."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False

    async def recv(self) -> str:
        item = await self.incoming.get()
        if isinstance(item, BaseException):
            self.closed = True
            raise item
        return item

    async def send(self, message: str) -> None:
        if self.closed:
            raise ConnectionClosedError(None, None)
        self.sent.append(message)
        if json.loads(message) == {"message": "ping"}:
            self.push({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})

    def push(self, message: dict) -> None:
        self.incoming.put_nowait(json.dumps(message))

    def drop(self) -> None:
        self.incoming.put_nowait(ConnectionClosedError(None, None))


class FakeNotifications:
    """Channels, subscriptions and sockets; `publish` reaches the connected sockets subscribed."""

    def __init__(self, org: ScriptedOrg, *, lifetime: timedelta = timedelta(hours=24)) -> None:
        self.lifetime = lifetime
        self.channels: dict[str, list[str]] = {}   # channel id → subscribed topics, in order
        self.sockets: dict[str, FakeSocket] = {}    # channel id → the connected socket
        self.connects: list[str] = []
        self.refuse_connects = 0
        self.drop_on_connect = 0
        self.answer_pings = True
        self.connected = asyncio.Event()
        self._ids = itertools.count(1)
        org.route("POST", CHANNELS, self._create)
        org.route("HEAD", CHANNELS + r"/[^/]+", self._head)
        org.route("PUT", SUBSCRIPTIONS, self._put)
        org.route("POST", SUBSCRIPTIONS, self._post)
        org.route("GET", SUBSCRIPTIONS, self._get)
        org.route("DELETE", SUBSCRIPTIONS, self._delete)

    # REST ------------------------------------------------------------------------------

    def _create(self, request):
        channel_id = f"streaming-0-{next(self._ids)}"
        self.channels[channel_id] = []
        expires = datetime.now(UTC) + self.lifetime
        return httpx.Response(200, json={
            "id": channel_id, "connectUri": f"wss://streaming.example.test/channels/{channel_id}",
            "expires": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")})

    def _channel_of(self, request) -> str | None:
        channel_id = request.url.path.split("/")[5]
        return channel_id if channel_id in self.channels else None

    def _head(self, request):
        return httpx.Response(200 if self._channel_of(request) else 404)

    def _listing(self, channel_id):
        return httpx.Response(200, json={"entities": [{"id": t, "state": "Permitted"} for t in self.channels[channel_id]]})

    def _put(self, request):
        channel_id = self._channel_of(request)
        if channel_id is None:
            return genesys_error(404, "not.found")
        self.channels[channel_id] = [item["id"] for item in json_of(request)]
        return self._listing(channel_id)

    def _post(self, request):
        channel_id = self._channel_of(request)
        if channel_id is None:
            return genesys_error(404, "not.found")
        self.channels[channel_id] += [item["id"] for item in json_of(request)]
        return self._listing(channel_id)

    def _get(self, request):
        channel_id = self._channel_of(request)
        return self._listing(channel_id) if channel_id else genesys_error(404, "not.found")

    def _delete(self, request):
        channel_id = self._channel_of(request)
        if channel_id is None:
            return genesys_error(404, "not.found")
        self.channels[channel_id] = []
        return httpx.Response(204)

    # WebSockets --------------------------------------------------------------------------

    @asynccontextmanager
    async def connect(self, uri: str):
        channel_id = uri.rsplit("/", 1)[-1]
        self.connects.append(channel_id)
        if self.refuse_connects:
            self.refuse_connects -= 1
            raise OSError("connection refused")
        if channel_id not in self.channels:
            raise OSError("404 on upgrade")
        previous = self.sockets.get(channel_id)
        if previous is not None:
            previous.drop()  # one socket per channel: a second connection closes the first
        socket = FakeSocket(channel_id)
        if not self.answer_pings:
            socket.send = _record_only(socket)
        self.sockets[channel_id] = socket
        if self.drop_on_connect:
            self.drop_on_connect -= 1
            socket.drop()
        self.connected.set()
        try:
            yield socket
        finally:
            socket.closed = True
            if self.sockets.get(channel_id) is socket:
                del self.sockets[channel_id]

    def publish(self, topic: str, body: dict) -> int:
        """Send a notification to every connected channel subscribed to `topic`; how many got it."""
        delivered = 0
        for channel_id, topics in self.channels.items():
            socket = self.sockets.get(channel_id)
            if socket is not None and topic in topics:
                socket.push({"topicName": topic, "version": "2", "eventBody": body,
                             "metadata": {"CorrelationId": "c"}})
                delivered += 1
        return delivered

    def close_channel(self, channel_id: str) -> None:
        """Maintenance: warn with socket_closing, then forget the channel."""
        socket = self.sockets.get(channel_id)
        if socket is not None:
            socket.push({"topicName": "v2.system.socket_closing", "eventBody": {"message": "closing"}})
        del self.channels[channel_id]

    def subscriptions_of(self, topic: str) -> int:
        return sum(topics.count(topic) for topics in self.channels.values())


def _record_only(socket: FakeSocket):
    async def send(message: str) -> None:
        socket.sent.append(message)
    return send

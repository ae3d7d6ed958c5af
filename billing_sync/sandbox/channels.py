"""Notification channels and their topic subscriptions (contract §8)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock, iso_ms
from .errors import GenesysError
from .randomness import SeededStream

MAX_CHANNELS_PER_CLIENT = 20
MAX_TOPICS_PER_CHANNEL = 1_000
CHANNEL_LIFETIME = timedelta(hours=24)
TOPIC = re.compile(r"^v2\.conversations\.[^.\s]+\.(playback|dtmf|transcription)$")


@dataclass
class Channel:
    id: str
    client_id: str
    created: datetime
    expires: datetime
    topics: list[str] = field(default_factory=list)
    connected: bool = False


def parse_topics(body: Any) -> list[str]:
    """A subscription body `[{"id": topic}, …]` as topic names; raises a 400."""
    if not isinstance(body, list):
        raise GenesysError(400, "bad.request", "The request body must be a JSON array of topics")
    topics = []
    for index, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise GenesysError(400, "invalid.value", f"[{index}].id: must be a topic name",
                               field=f"[{index}].id")
        topics.append(item["id"])
    return topics


class ChannelRegistry:
    """Every channel of the org; `on_removed(channel_id)` hears of channels dropped or expired."""

    def __init__(self, clock: Clock, ids: SeededStream) -> None:
        self._clock = clock
        self._ids = ids
        self._channels: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self.on_removed: Callable[[str], None] = lambda channel_id: None

    def create(self, client_id: str) -> Channel:
        """A new channel; past 20 for the client, the oldest unconnected one goes."""
        now = self._clock.now()
        channel = Channel(id=f"streaming-0-{self._ids.token(13)}", client_id=client_id,
                          created=now, expires=now + CHANNEL_LIFETIME)
        removed: list[str] = []
        with self._lock:
            removed += self._expire(now)
            mine = [c for c in self._channels.values() if c.client_id == client_id]
            while len(mine) >= MAX_CHANNELS_PER_CLIENT:
                victim = next((c for c in mine if not c.connected), mine[0])
                mine.remove(victim)
                del self._channels[victim.id]
                removed.append(victim.id)
            self._channels[channel.id] = channel
        for channel_id in removed:
            self.on_removed(channel_id)
        return channel

    def get(self, channel_id: str) -> Channel | None:
        """The live channel, or None when unknown or expired."""
        with self._lock:
            removed = self._expire(self._clock.now())
            channel = self._channels.get(channel_id)
        for gone in removed:
            self.on_removed(gone)
        return channel

    def owned(self, client_id: str) -> list[Channel]:
        with self._lock:
            return [c for c in self._channels.values() if c.client_id == client_id]

    def require(self, channel_id: str) -> Channel:
        channel = self.get(channel_id)
        if channel is None:
            raise GenesysError(404, "not.found", f"Unable to find a channel with id {channel_id}")
        return channel

    def subscribe(self, channel_id: str, topics: list[str], *, replace: bool) -> list[dict[str, str]]:
        """Replace (PUT) or extend (POST) the channel's topics; answer each topic's state."""
        permitted = [t for t in topics if TOPIC.match(t)]
        with self._lock:
            channel = self._channels.get(channel_id)
            if channel is None:
                raise GenesysError(404, "not.found", f"Unable to find a channel with id {channel_id}")
            merged = list(dict.fromkeys(([] if replace else channel.topics) + permitted))
            if len(merged) > MAX_TOPICS_PER_CHANNEL:
                raise GenesysError(400, "bad.request",
                                   f"Too many topics: a channel takes at most "
                                   f"{MAX_TOPICS_PER_CHANNEL}, this would make {len(merged)}")
            channel.topics = merged
            entities = [{"id": t, "state": "Permitted"} for t in merged]
        entities += [{"id": t, "state": "Rejected"} for t in topics if not TOPIC.match(t)]
        return entities

    def topics(self, channel_id: str) -> list[dict[str, str]]:
        channel = self.require(channel_id)
        with self._lock:
            return [{"id": t, "state": "Permitted"} for t in channel.topics]

    def unsubscribe_all(self, channel_id: str) -> None:
        channel = self.require(channel_id)
        with self._lock:
            channel.topics = []

    def subscribers(self, topic: str) -> list[str]:
        """The channels subscribed to a topic."""
        with self._lock:
            return [c.id for c in self._channels.values() if topic in c.topics]

    def set_connected(self, channel_id: str, connected: bool) -> None:
        with self._lock:
            if channel_id in self._channels:
                self._channels[channel_id].connected = connected

    def _expire(self, now: datetime) -> list[str]:
        gone = [c.id for c in self._channels.values() if c.expires <= now]
        for channel_id in gone:
            del self._channels[channel_id]
        return gone


def channel_view(channel: Channel, connect_uri: str) -> dict[str, str]:
    """A Channel as Genesys returns it."""
    return {"connectUri": connect_uri, "id": channel.id, "expires": iso_ms(channel.expires)}

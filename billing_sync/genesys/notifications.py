"""Notification channels and their topic subscriptions over REST (§8); stream.py connects to them."""

from __future__ import annotations

from collections.abc import Iterable

from .api import GenesysAPI, load, outgoing, segment
from .errors import NotFound
from .models import Channel, Subscription
from .schemas import MAX_TOPICS_PER_CHANNEL, ChannelSchema, SubscriptionListSchema, TopicSchema

_channel = ChannelSchema()
_subscriptions = SubscriptionListSchema()
_topics = TopicSchema()


class NotificationsAPI(GenesysAPI):
    """Create channels and set what they are subscribed to."""

    def create_channel(self) -> Channel:
        """A new channel; its `connect_uri` takes one WebSocket, until `expires`."""
        # Safe to repeat: an extra unconnected channel is dropped by Genesys Cloud after 20.
        response = self.call("POST", "/api/v2/notifications/channels", idempotent=True)
        return load(_channel, response)

    def channel_exists(self, channel_id: str) -> bool:
        """True while Genesys Cloud still knows the channel."""
        try:
            self.call("HEAD", f"/api/v2/notifications/channels/{segment(channel_id)}")
        except NotFound:
            return False
        return True

    def list_subscriptions(self, channel_id: str) -> list[Subscription]:
        """The topics the channel is subscribed to."""
        response = self.call("GET", _subscriptions_path(channel_id))
        return load(_subscriptions, response)["entities"]

    def replace_subscriptions(self, channel_id: str, topics: Iterable[str]) -> list[Subscription]:
        """Make the channel's topics exactly these (PUT replaces, so nothing is doubled)."""
        body = _topic_list(topics)
        response = self.call("PUT", _subscriptions_path(channel_id), json=body)
        return load(_subscriptions, response)["entities"]

    def add_subscriptions(self, channel_id: str, topics: Iterable[str]) -> list[Subscription]:
        """Add topics to the channel's list."""
        body = _topic_list(topics)
        # Adding a topic twice leaves it once, so a repeat is harmless.
        response = self.call("POST", _subscriptions_path(channel_id), json=body, idempotent=True)
        return load(_subscriptions, response)["entities"]

    def delete_subscriptions(self, channel_id: str) -> None:
        """Remove every topic from the channel."""
        self.call("DELETE", _subscriptions_path(channel_id))


def _subscriptions_path(channel_id: str) -> str:
    return f"/api/v2/notifications/channels/{segment(channel_id)}/subscriptions"


def _topic_list(topics: Iterable[str]) -> list[dict[str, str]]:
    unique = list(dict.fromkeys(topics))
    if len(unique) > MAX_TOPICS_PER_CHANNEL:
        raise ValueError(f"{len(unique)} topics: a channel takes at most {MAX_TOPICS_PER_CHANNEL}")
    return outgoing(_topics, [{"id": topic} for topic in unique], many=True)

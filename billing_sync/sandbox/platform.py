"""The sandbox org's parts wired together: state, clock, scheduler, fan-out, sinks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .billing_sink import BillingSink
from .calls import CallControl
from .channels import ChannelRegistry
from .clock import Clock, ScaledClock
from .delivery import WebhookDelivery
from .events import Publisher
from .faults import FaultSettings
from .org import Org
from .playback import PlaybackLifecycle
from .randomness import Randomness
from .scheduler import Scheduler
from .streaming import StreamHub
from .tokens import TokenIssuer, validate_scopes
from .webhooks import WebhookRegistry


class Platform:
    """Everything behind the sandbox's HTTP and WebSocket endpoints."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        seed: int = 0,
        time_scale: float = 1.0,
        scopes: Iterable[str] | None = None,
        token_ttl_s: int = 86_400,
        billing_secrets: Iterable[str] = (),
        clock: Clock | None = None,
        faults: Mapping[str, Any] | None = None,
        webhook_timeout_s: float = 10.0,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.clock: Clock = clock or ScaledClock(time_scale)
        self.random = Randomness(seed)
        self.faults = FaultSettings(self.clock.now)
        if faults:
            self.faults.update(faults)
        self.org = Org(org_id=self.random.ids.uuid())
        self.scheduler = Scheduler(self.clock, time_scale)
        self.publisher = Publisher(self.random.ids)
        self.lifecycle = PlaybackLifecycle(self.org, self.clock, self.scheduler, self.publisher,
                                           self.random.ids)
        self.calls = CallControl(self.org, self.clock, self.publisher, self.lifecycle,
                                 self.random.ids)
        self.tokens = TokenIssuer(client_id=client_id, client_secret=client_secret,
                                  scopes=validate_scopes(scopes), ttl_s=token_ttl_s,
                                  clock=self.clock, tokens=self.random.tokens)
        self.webhooks = WebhookRegistry(self.random.ids)
        self.delivery = WebhookDelivery(self.webhooks, self.scheduler, self.clock, self.faults,
                                        self.random.webhooks, timeout_s=webhook_timeout_s)
        self.channels = ChannelRegistry(self.clock, self.random.ids)
        self.hub = StreamHub(self.channels, self.faults, time_scale)
        self.billing = BillingSink(billing_secrets, self.faults)
        self.publisher.to_stream(self.hub.publish)
        self.publisher.to_webhooks(self.delivery.enqueue)

    def start(self) -> None:
        self.scheduler.start()
        self.delivery.start()
        self.hub.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.delivery.stop()
        self.hub.stop()

    def set_faults(self, changes: Any) -> dict[str, Any]:
        """Apply a fault update; `socket_closing_now` is carried out at once."""
        current = self.faults.update(changes)
        if current.socket_closing_now:
            self.hub.announce_closing()
            self.faults.clear_socket_closing()
        return self.faults.as_json()

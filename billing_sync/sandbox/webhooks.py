"""Registered playback webhooks (contract §7): validation, CRUD, listings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import GenesysError, invalid
from .events import PLAYBACK_EVENT_TYPE
from .randomness import SeededStream

EVENT_TYPES = (PLAYBACK_EVENT_TYPE,)
AUTH_SCHEMES = ("basic", "none")


@dataclass(frozen=True)
class Webhook:
    id: str
    name: str
    event_filters: tuple[str, ...]
    address: str
    method: str
    enabled: bool
    auth_scheme: str
    auth_username: str | None
    auth_password: str | None

    def view(self) -> dict[str, Any]:
        """The webhook as the API shows it: never the password."""
        return {"id": self.id, "name": self.name, "eventFilters": list(self.event_filters),
                "address": self.address, "method": self.method, "enabled": self.enabled,
                "authScheme": self.auth_scheme, "authUsername": self.auth_username,
                "selfUri": f"/api/v2/webhooks/{self.id}"}


def _string(body: dict, name: str, *, required: bool = True, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "must be a non-empty string")
    return value


def parse_webhook(body: Any, webhook_id: str, previous: Webhook | None = None) -> Webhook:
    """Validate a create/update body; raises a 400 naming the field."""
    if not isinstance(body, dict):
        raise GenesysError(400, "bad.request", "The request body must be a JSON object")
    name = _string(body, "name")
    filters = body.get("eventFilters")
    if not isinstance(filters, list) or not filters or not all(isinstance(f, str) for f in filters):
        raise invalid("eventFilters", "must be a non-empty list of event types")
    unknown = [f for f in filters if f not in EVENT_TYPES]
    if unknown:
        raise invalid("eventFilters", f"unknown event type {unknown[0]!r}")
    address = _string(body, "address")
    parts = urlsplit(address or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("address", "must be an http(s) URL")
    method = _string(body, "method", default="POST")
    if method != "POST":
        raise invalid("method", "only POST is supported")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise invalid("enabled", "must be true or false")
    scheme = body.get("authScheme", "none")
    if scheme not in AUTH_SCHEMES:
        raise invalid("authScheme", f"must be one of {', '.join(AUTH_SCHEMES)}")
    username = password = None
    if scheme == "basic":
        username = _string(body, "authUsername")
        kept = previous.auth_password if previous else None
        password = _string(body, "authPassword", required=kept is None) or kept
    return Webhook(id=webhook_id, name=name or "", event_filters=tuple(filters),
                   address=address or "", method=method or "POST", enabled=enabled,
                   auth_scheme=scheme, auth_username=username, auth_password=password)


class WebhookRegistry:
    """The org's webhooks, in creation order."""

    def __init__(self, ids: SeededStream) -> None:
        self._ids = ids
        self._hooks: dict[str, Webhook] = {}
        self._lock = threading.Lock()

    def create(self, body: Any) -> Webhook:
        hook = parse_webhook(body, self._ids.uuid())
        with self._lock:
            self._hooks[hook.id] = hook
        return hook

    def get(self, webhook_id: str) -> Webhook:
        with self._lock:
            hook = self._hooks.get(webhook_id)
        if hook is None:
            raise GenesysError(404, "not.found", f"Unable to find a webhook with id {webhook_id}")
        return hook

    def update(self, webhook_id: str, body: Any) -> Webhook:
        with self._lock:
            previous = self._hooks.get(webhook_id)
            if previous is None:
                raise GenesysError(404, "not.found", f"Unable to find a webhook with id {webhook_id}")
            hook = parse_webhook(body, webhook_id, previous)
            self._hooks[webhook_id] = hook
        return hook

    def delete(self, webhook_id: str) -> None:
        with self._lock:
            if self._hooks.pop(webhook_id, None) is None:
                raise GenesysError(404, "not.found", f"Unable to find a webhook with id {webhook_id}")

    def subscribed(self, event_type: str) -> list[Webhook]:
        """Enabled webhooks whose filters take this event type."""
        with self._lock:
            return [h for h in self._hooks.values() if h.enabled and event_type in h.event_filters]

    def listing(self, page_size: int, page_number: int) -> dict[str, Any]:
        """A Genesys entity listing of one page."""
        with self._lock:
            hooks = list(self._hooks.values())
        start = (page_number - 1) * page_size
        page = hooks[start:start + page_size]
        page_count = max(1, -(-len(hooks) // page_size))
        uri = "/api/v2/webhooks?pageSize={}&pageNumber={}"
        return {"entities": [h.view() for h in page], "pageSize": page_size,
                "pageNumber": page_number, "total": len(hooks), "pageCount": page_count,
                "firstUri": uri.format(page_size, 1), "selfUri": uri.format(page_size, page_number),
                "lastUri": uri.format(page_size, page_count)}

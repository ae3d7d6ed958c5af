"""Webhook registration (§7): list, get, delete, and an idempotent register-by-name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..logs import get_logger
from .api import GenesysAPI, load, outgoing, segment
from .models import Webhook, WebhookRegistration
from .schemas import PLAYBACK_EVENT_FILTER, WebhookPageSchema, WebhookSchema, WebhookWriteSchema

WEBHOOKS_PAGE_SIZE = 100
# A listing that never ends (a server bug) must not loop forever.
MAX_WEBHOOK_PAGES = 1000

_page = WebhookPageSchema()
_webhook = WebhookSchema()
_write = WebhookWriteSchema()
log = get_logger("billing_sync.genesys.webhooks")


class WebhooksAPI(GenesysAPI):
    """The org's webhooks."""

    def list_webhooks(self) -> list[Webhook]:
        """Every webhook of the org, across all pages."""
        return list(self._iter_webhooks())

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook; NotFound when it does not exist."""
        return load(_webhook, self.call("GET", f"/api/v2/webhooks/{segment(webhook_id)}"))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; NotFound when it does not exist."""
        self.call("DELETE", f"/api/v2/webhooks/{segment(webhook_id)}")

    def register_webhook(
        self, name: str, address: str, username: str, password: str,
        *, event_filters: Sequence[str] = (PLAYBACK_EVENT_FILTER,),
    ) -> WebhookRegistration:
        """Make the webhook called `name` exist with exactly these settings, however often run.

        Found by name: created when missing, updated (PUT) when present. Copies left by an
        earlier race between two registrations are deleted so exactly one delivers.
        """
        body = outgoing(_write, {
            "name": name, "eventFilters": list(event_filters), "address": address, "method": "POST",
            "enabled": True, "authScheme": "basic", "authUsername": username, "authPassword": password,
        })
        same_name = [webhook for webhook in self._iter_webhooks() if webhook.name == name]
        if not same_name:
            # Not retried (POST): a lost answer could leave two; the next run removes the copy.
            created = load(_webhook, self.call("POST", "/api/v2/webhooks", json=body, idempotent=False))
            log.info("genesys.webhook.created", webhook_id=created.id, name=name)
            return WebhookRegistration(webhook=created, created=True)
        keep, *copies = same_name
        updated = load(_webhook, self.call("PUT", f"/api/v2/webhooks/{segment(keep.id)}", json=body))
        for copy in copies:
            self.delete_webhook(copy.id)
        log.info("genesys.webhook.updated", webhook_id=updated.id, name=name, removed_duplicates=len(copies))
        return WebhookRegistration(webhook=updated, created=False, removed_duplicates=len(copies))

    def _iter_webhooks(self) -> Iterator[Webhook]:
        seen: set[str] = set()
        page_size = WEBHOOKS_PAGE_SIZE
        for page_number in range(1, MAX_WEBHOOK_PAGES + 1):
            page = load(_page, self.call(
                "GET", "/api/v2/webhooks", params={"pageSize": page_size, "pageNumber": page_number},
            ))
            # A server that caps the page size numbers its pages in that size.
            page_size = page["pageSize"] or page_size
            for webhook in page["entities"]:
                # A webhook created meanwhile shifts the pages; do not report one twice.
                if webhook.id not in seen:
                    seen.add(webhook.id)
                    yield webhook
            if _last_page(page, page_number, page_size):
                return


def _last_page(page: dict, page_number: int, page_size: int) -> bool:
    entities = page["entities"]
    if not entities:
        return True
    if page["pageCount"] is not None:
        return page_number >= page["pageCount"]
    if page["total"] is not None:
        return page_number * page_size >= page["total"]
    return len(entities) < page_size

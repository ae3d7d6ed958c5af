"""Webhook registration (§7) is idempotent: found by name across pages, created or updated."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from billing_sync.genesys import errors

from .conftest import genesys_error, json_of

NAME = "PlaybackBillingSync"
ADDRESS = "https://billing.example.com/webhooks/genesys"


class WebhookStore:
    """The webhooks endpoints as a list in memory, with Genesys paging (page size capped at 25)."""

    def __init__(self, org, *, max_page_size=25) -> None:
        self.items: list[dict] = []
        self.max_page_size = max_page_size
        org.route("GET", r"/api/v2/webhooks", self.list)
        org.route("POST", r"/api/v2/webhooks", self.create)
        org.route("GET", r"/api/v2/webhooks/[^/]+", self.get)
        org.route("PUT", r"/api/v2/webhooks/[^/]+", self.put)
        org.route("DELETE", r"/api/v2/webhooks/[^/]+", self.delete)

    def add(self, **fields) -> dict:
        item = {"id": str(uuid.uuid4()), "name": "other", "eventFilters": ["x"], "address": "https://o.example.com",
                "method": "POST", "enabled": True, "authScheme": "basic", "authUsername": "u", **fields}
        self.items.append(item)
        return item

    def list(self, request):
        size = min(int(request.url.params.get("pageSize", 25)), self.max_page_size)
        number = int(request.url.params.get("pageNumber", 1))
        page = self.items[(number - 1) * size: number * size]
        return httpx.Response(200, json={"entities": [self._public(i) for i in page], "pageSize": size,
                                         "pageNumber": number, "total": len(self.items)})

    def create(self, request):
        return httpx.Response(201, json=self._public(self.add(**json_of(request))))

    def _find(self, request):
        webhook_id = request.url.path.rsplit("/", 1)[-1]
        return next((i for i in self.items if i["id"] == webhook_id), None)

    def get(self, request):
        item = self._find(request)
        return httpx.Response(200, json=self._public(item)) if item else genesys_error(404, "not.found")

    def put(self, request):
        item = self._find(request)
        if item is None:
            return genesys_error(404, "not.found")
        item.update(json_of(request))
        return httpx.Response(200, json=self._public(item))

    def delete(self, request):
        item = self._find(request)
        if item is None:
            return genesys_error(404, "not.found")
        self.items.remove(item)
        return httpx.Response(204)

    @staticmethod
    def _public(item):
        public = {k: v for k, v in item.items() if k != "authPassword"}
        return {**public, "selfUri": f"/api/v2/webhooks/{item['id']}"}


@pytest.fixture
def store(org):
    return WebhookStore(org)


def test_registering_twice_leaves_one_webhook(genesys, store, org):
    first = genesys.register_webhook(NAME, ADDRESS, "genesys", "pw-1")
    second = genesys.register_webhook(NAME, ADDRESS, "genesys", "pw-2")
    assert first.created and not second.created
    assert first.webhook.id == second.webhook.id
    assert [i["name"] for i in store.items] == [NAME]
    assert store.items[0]["authPassword"] == "pw-2"
    (created,) = org.api_requests("POST")
    assert json_of(created) == {"name": NAME, "eventFilters": ["conversation:voice:playback"], "address": ADDRESS,
                                "method": "POST", "enabled": True, "authScheme": "basic",
                                "authUsername": "genesys", "authPassword": "pw-1"}
    (updated,) = org.api_requests("PUT")
    assert json_of(updated)["authPassword"] == "pw-2"


def test_the_webhook_is_found_on_a_later_page(genesys, store, org):
    for n in range(60):
        store.add(name=f"other-{n}")
    existing = store.add(name=NAME, address="https://old.example.com/hook")
    registration = genesys.register_webhook(NAME, ADDRESS, "genesys", "pw")
    assert not registration.created and registration.webhook.id == existing["id"]
    assert registration.webhook.address == ADDRESS
    assert len(store.items) == 61
    pages = [r.url.params["pageNumber"] for r in org.api_requests("GET")]
    assert pages == ["1", "2", "3"]


def test_copies_left_by_an_earlier_race_are_removed(genesys, store):
    keep = store.add(name=NAME)
    store.add(name=NAME)
    store.add(name="unrelated")
    registration = genesys.register_webhook(NAME, ADDRESS, "genesys", "pw")
    assert registration.webhook.id == keep["id"] and registration.removed_duplicates == 1
    assert sorted(i["name"] for i in store.items) == [NAME, "unrelated"]


def test_list_get_and_delete(genesys, store):
    hook = store.add(name="a")
    store.add(name="b")
    assert [w.name for w in genesys.list_webhooks()] == ["a", "b"]
    assert genesys.get_webhook(hook["id"]).event_filters == ("x",)
    genesys.delete_webhook(hook["id"])
    with pytest.raises(errors.NotFound):
        genesys.get_webhook(hook["id"])


def test_the_create_post_is_not_retried(genesys, org, sleeps):
    org.route("GET", r"/api/v2/webhooks", httpx.Response(200, json={"entities": [], "total": 0}))
    org.route("POST", r"/api/v2/webhooks", genesys_error(503, "service.unavailable"))
    with pytest.raises(errors.ServerError):
        genesys.register_webhook(NAME, ADDRESS, "genesys", "pw")
    assert len(org.api_requests("POST")) == 1 and sleeps.waits == []


def test_missing_scope_is_forbidden(genesys, org):
    org.route("GET", r"/api/v2/webhooks", genesys_error(403, "missing.scope", "Missing scope: webhook:write"))
    with pytest.raises(errors.Forbidden) as raised:
        genesys.register_webhook(NAME, ADDRESS, "genesys", "pw")
    assert raised.value.missing == ("webhook:write",)


def test_the_password_is_never_logged(genesys, store, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    genesys.register_webhook(NAME, ADDRESS, "genesys", "very-secret-pw")
    captured = capsys.readouterr()
    output = captured.out + captured.err + caplog.text
    assert "genesys.webhook.created" in output  # the log was captured, and holds no password
    assert "very-secret-pw" not in output

"""GET/POST/DELETE /api/v1/switch-rules: validation, admin only, audited, retired not deleted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing_sync.models import AuditEntry, SwitchRule

from ..control_fixtures import MEDIA_HOST, OTHER_MEDIA

RULES = "/api/v1/switch-rules"


def test_create_read_list_and_retire(control_app, control_client, admin_key):
    headers, key_id = admin_key()
    created = control_client.post(RULES, json={"dtmf": "1", "media_url": OTHER_MEDIA}, headers=headers)
    assert created.status_code == 201, created.json
    rule = created.json
    assert {k: rule[k] for k in ("dtmf", "keyword", "conversation_id", "cooldown_s", "loop", "max_duration_s",
                                 "created_by")} == {"dtmf": "1", "keyword": None, "conversation_id": None,
                                                    "cooldown_s": 10, "loop": False, "max_duration_s": 30,
                                                    "created_by": key_id}
    spoken = control_client.post(RULES, json={"keyword": "  Cancel   Order ", "media_url": OTHER_MEDIA,
                                              "conversation_id": "c-1", "cooldown_s": 0}, headers=headers).json
    assert (spoken["keyword"], spoken["conversation_id"], spoken["cooldown_s"]) == ("cancel order", "c-1", 0)
    assert control_client.get(f"{RULES}/{rule['id']}", headers=headers).json == rule
    listed = control_client.get(RULES, headers=headers).json
    assert [r["id"] for r in listed["items"]] == [rule["id"], spoken["id"]] and listed["next_cursor"] is None
    page = control_client.get(f"{RULES}?limit=1", headers=headers).json
    assert [r["id"] for r in page["items"]] == [rule["id"]]
    rest = control_client.get(f"{RULES}?limit=1&cursor={page['next_cursor']}", headers=headers).json
    assert [r["id"] for r in rest["items"]] == [spoken["id"]]

    assert control_client.delete(f"{RULES}/{rule['id']}", headers=headers).status_code == 204
    assert [r["id"] for r in control_client.get(RULES, headers=headers).json["items"]] == [spoken["id"]]
    assert control_client.delete(f"{RULES}/{rule['id']}", headers=headers).status_code == 404
    assert control_client.get(f"{RULES}/{rule['id']}", headers=headers).status_code == 404
    with control_app.extensions["billing_sync"].db.read() as session:
        retired = session.get(SwitchRule, rule["id"])
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.subject == f"switch_rule:{rule['id']}")
                                       .order_by(AuditEntry.id)))
    assert retired.deleted_at is not None and retired.deleted_by == key_id  # kept on record
    assert [(e.action, e.actor) for e in entries] == [("switch_rule.created", f"api_key:{key_id}"),
                                                      ("switch_rule.deleted", f"api_key:{key_id}")]


@pytest.mark.parametrize(("body", "field"), [
    ({"media_url": OTHER_MEDIA}, "dtmf"),
    ({"dtmf": "1", "keyword": "cancel", "media_url": OTHER_MEDIA}, "dtmf"),
    ({"dtmf": "12", "media_url": OTHER_MEDIA}, "dtmf"),
    ({"dtmf": "E", "media_url": OTHER_MEDIA}, "dtmf"),
    ({"keyword": "", "media_url": OTHER_MEDIA}, "keyword"),
    ({"keyword": "can*cel", "media_url": OTHER_MEDIA}, "keyword"),
    ({"keyword": "x" * 65, "media_url": OTHER_MEDIA}, "keyword"),
    ({"dtmf": "1"}, "media_url"),
    ({"dtmf": "1", "media_url": OTHER_MEDIA, "cooldown_s": -1}, "cooldown_s"),
    ({"dtmf": "1", "media_url": OTHER_MEDIA, "cooldown_s": 1.5}, "cooldown_s"),
    ({"dtmf": "1", "media_url": OTHER_MEDIA, "conversation_id": "a/b"}, "conversation_id"),
    ({"dtmf": "1", "media_url": OTHER_MEDIA, "max_duration_s": 0}, "max_duration_s"),
    ({"dtmf": "1", "media_url": OTHER_MEDIA, "priority": 1}, "priority"),
])
def test_bad_rules_are_400_naming_the_field(control_client, admin_key, body, field):
    headers, _ = admin_key()
    response = control_client.post(RULES, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"Invalid json: {field}: ")
    assert control_client.get(RULES, headers=headers).json["items"] == []


@pytest.mark.parametrize(("url", "rule"), [(f"http://{MEDIA_HOST}/a.wav", "scheme"),
                                           ("https://evil.example/a.wav", "host"),
                                           ("https://127.0.0.1/a.wav", "ip_literal")])
def test_the_rule_media_url_is_validated_like_playback(control_client, admin_key, url, rule):
    headers, _ = admin_key()
    response = control_client.post(RULES, json={"dtmf": "1", "media_url": url}, headers=headers)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"Invalid media_url: {rule}: ")


@pytest.mark.parametrize("role", ["viewer", "finance"])
def test_only_admins_manage_rules(control_client, admin_key, role):
    headers, _ = admin_key(role)
    assert control_client.get(RULES, headers=headers).status_code == 403
    assert control_client.post(RULES, json={"dtmf": "1", "media_url": OTHER_MEDIA}, headers=headers).status_code == 403
    assert control_client.delete(f"{RULES}/1", headers=headers).status_code == 403


def test_the_openapi_document_lists_every_method(control_client):
    paths = control_client.get("/openapi.json").json["paths"]
    assert set(paths[RULES]) >= {"get", "post"}
    assert set(paths[RULES + "/{rule_id}"]) >= {"get", "delete"}
    assert "post" in paths["/api/v1/conversations/{conversation_id}/playbacks/switch"]

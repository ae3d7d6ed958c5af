"""Health, readiness, OpenAPI, the error shape, request ids."""

from __future__ import annotations

import json
import re

import pytest

from billing_sync import create_app

from ..conftest import make_settings


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"
    assert response.json["migrations"]["current"] == response.json["migrations"]["head"]


def test_readyz_is_503_before_migrations(tmp_path):
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/empty.db")
    app = create_app(settings)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["migrations"]["current"] is None


def test_readyz_is_503_when_the_database_is_unreachable():
    settings = make_settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    response = create_app(settings).test_client().get("/readyz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").json
    assert spec["info"]["title"] == "billing-sync"
    for path in ("/webhooks/genesys", "/api/v1/playbacks", "/api/v1/playbacks/{playback_id}", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    listing = spec["paths"]["/api/v1/playbacks"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"conversation_id", "state", "since", "until", "cursor", "limit"}


def test_unknown_route_and_method_use_the_error_shape(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and set(missing.json) == {"code", "status", "message", "errors"}
    wrong = client.get("/webhooks/genesys")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert set(wrong.json) == {"code", "status", "message", "errors"}


def test_request_id_is_echoed_or_made(client, capsys):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["X-Request-ID"]) == 32
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert access[0]["request_id"] == "abc-123" and access[0]["status"] == 200


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/switch-rules/2147483648"),            # over PostgreSQL's INTEGER: was a 500 there
    ("DELETE", "/api/v1/switch-rules/2147483648"),
    ("GET", "/api/v1/reconciliations/9223372036854775808"),  # over 64 bits: SQLite cannot bind it
    ("POST", "/api/v1/billing/outbox/9223372036854775808/replay"),
    ("GET", "/api/v1/reconciliations/0"),
    ("DELETE", "/api/v1/switch-rules/0"),                   # not a 405 from the GET route beside it
])
def test_an_id_out_of_its_column_range_names_nothing(client, api_key, method, path):
    # Found by the API fuzz on PostgreSQL: "integer out of range" became a 500.
    answer = client.open(path, method=method, headers=api_key("admin"))
    assert answer.status_code == 404 and set(answer.json) == {"code", "status", "message", "errors"}


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    # Found by the API fuzz: PostgreSQL text cannot hold NUL (a 500 there), and an instant that
    # leaves the calendar once in UTC overflowed wherever it was next converted (a 500 on both).
    ("GET", "/api/v1/playbacks?conversation_id=a%00b", None, "conversation_id"),
    ("GET", "/api/v1/billing/records?playback_id=a%00b", None, "playback_id"),
    ("GET", "/api/v1/playbacks?since=0001-01-01T00:00:00%2B01:00", None, "since"),
    ("GET", "/api/v1/audit/export.csv?dataset=events&since=2026-01-01T00:00:00Z&until=9999-12-31T23:59:59-01:00",
     None, "until"),
    ("POST", "/api/v1/switch-rules", {"keyword": "stop\x00", "media_url": "https://media.example.com/a.wav"},
     "keyword"),
])
def test_arguments_no_database_can_hold_are_400_naming_the_field(client, api_key, method, url, body, field):
    answer = client.open(url, method=method, json=body, headers=api_key("admin"))
    assert answer.status_code == 400 and field in answer.json["message"], answer.json


def test_a_playback_id_with_a_nul_names_nothing(client, api_key):
    answer = client.get("/api/v1/playbacks/ab%00c", headers=api_key("viewer"))
    assert answer.status_code == 404 and set(answer.json) == {"code", "status", "message", "errors"}


def test_every_route_is_in_the_openapi_document(app, client):
    paths = client.get("/openapi.json").json["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations
                  if method != "parameters"}
    served = {(method, re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
              for rule in app.url_map.iter_rules() if rule.endpoint not in UNDOCUMENTED_ENDPOINTS
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


UNDOCUMENTED_ENDPOINTS = {"static", "api-docs.openapi_json"}


def test_every_error_is_documented_with_the_error_body(client):
    spec = client.get("/openapi.json").json
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"code", "status", "message", "errors"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            assert "default" not in responses, (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and path != "/readyz":  # readiness answers 503 with its report
                    response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]] \
                        if "$ref" in response else response
                    assert response["content"] == error, (method, path, status)
            if path.startswith("/api/v1/"):
                assert "401" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)


def test_the_csv_export_is_documented_as_text_csv(client):
    export = client.get("/openapi.json").json["paths"]["/api/v1/audit/export.csv"]["get"]
    assert list(export["responses"]["200"]["content"]) == ["text/csv"]

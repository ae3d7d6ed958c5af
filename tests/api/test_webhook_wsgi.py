"""The webhook's fast path answers exactly as the Flask view, the reference, would.

Each case goes once through the app as served (fast path in front) and once straight to
the Flask view, each with its own fresh events, on the same database.
"""

from __future__ import annotations

import base64
import json

import pytest
from flask import Response
from sqlalchemy import func, select
from werkzeug.test import Client

from billing_sync.models import PlaybackEvent

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..metrics.conftest import scrape

INGEST = {"route": "/webhooks/genesys", "method": "POST"}


def _json(payload, **headers):
    return {"data": json.dumps(payload), "headers": {"Content-Type": "application/json", **headers}}


# Each case: events → the keyword arguments of one POST (credentials added unless given).
CASES = {
    "bare event": lambda e: _json(e.event()),
    "notification": lambda e: _json(e.notification(e.event(state="completed", sequence=3, duration=9000))),
    "eventbridge": lambda e: _json(e.eventbridge(e.event())),
    "batch with a duplicate": lambda e: _json([body := e.event(), e.notification(body), e.event()]),
    "charset in content type": lambda e: {"data": json.dumps(e.event()),
                                          "headers": {"Content-Type": "application/json; charset=utf-8"}},
    "given request id": lambda e: _json(e.event(), **{"X-Request-ID": "abc-123"}),
    "lower-case scheme": lambda e: _json(e.event(), Authorization="basic " + _token()),
    "wrong password": lambda e: _json(e.event(), Authorization="Basic " + _token(password="wrong")),
    "no credentials": lambda e: _json(e.event(), Authorization=""),
    "text content type": lambda e: {"data": json.dumps(e.event()), "headers": {"Content-Type": "text/plain"}},
    "not json": lambda e: {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
    "not utf-8": lambda e: {"data": b'{"a": "\xff"}', "headers": {"Content-Type": "application/json"}},
    "schema error": lambda e: _json({**e.event(), "duration": -1}),
    "nul character": lambda e: _json(e.event(playbackId="p\x00")),
    "empty batch": lambda e: _json([]),
    "batch over 500": lambda e: _json([e.event() for _ in range(501)]),
    "body over 1 MiB": lambda e: _json(e.event(padding="x" * (1024 * 1024))),
}


def _token(username=WEBHOOK_USER, password=WEBHOOK_PASSWORD):
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _post(client, request):
    headers = {"Authorization": "Basic " + _token(), **request["headers"]}
    return client.post("/webhooks/genesys", data=request["data"], headers={k: v for k, v in headers.items() if v})


@pytest.fixture
def reference(app):
    """A client of the Flask app alone, without the fast path in front."""
    return Client(app.wsgi_app.flask_wsgi_app, Response)


def _comparable(response):
    headers = dict(response.headers)
    request_id = headers.pop("X-Request-ID")
    assert request_id == "abc-123" or len(request_id) == 32
    return response.status_code, response.get_data(), headers, request_id if request_id == "abc-123" else None


@pytest.mark.parametrize("case", CASES)
def test_fast_path_and_view_answer_alike(client, reference, events, db, case):
    served, view = _post(client, CASES[case](events)), _post(reference, CASES[case](events))
    assert _comparable(served) == _comparable(view)
    with db.read() as session:
        stored = session.scalar(select(func.count()).select_from(PlaybackEvent))
    assert stored == (2 * served.json["accepted"] if served.status_code == 200 else 0)


def test_the_common_case_never_reaches_flask(app, client, webhook_auth, events):
    def refuse(environ, start_response):
        raise AssertionError("answered by the Flask view")

    app.wsgi_app.flask_wsgi_app = refuse
    response = client.post("/webhooks/genesys", json=events.event(), headers=webhook_auth)
    assert response.status_code == 200 and response.json == {"accepted": 1, "duplicates": 0}
    # As gunicorn serves it: an input that ends with the body.
    response = client.post("/webhooks/genesys", json=events.event(), headers=webhook_auth,
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200 and response.json == {"accepted": 1, "duplicates": 0}
    with pytest.raises(AssertionError, match="Flask view"):
        client.post("/webhooks/genesys", json=events.event(), headers={})


def test_fast_path_logs_and_counts_like_the_view(client, reference, webhook_auth, events, capsys):
    capsys.readouterr()
    totals = []
    for target in (client, reference):
        before = scrape(client)
        target.post("/webhooks/genesys", json=[events.event(), events.event()],
                    headers={**webhook_auth, "X-Request-ID": "req-1"})
        after = scrape(client)
        totals.append([after.get(name, **labels) - before.get(name, **labels) for name, labels in (
            ("billing_sync_webhook_events_total", {"result": "accepted"}),
            ("billing_sync_http_requests_total", {**INGEST, "status": "200"}),
            ("billing_sync_http_request_duration_seconds_count", INGEST),
        )] + [after.value("billing_sync_http_requests_in_flight")])
    assert totals[0] == totals[1] == [2, 1, 1, 1]  # the one in flight: the scrape itself
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [{k: v for k, v in line.items() if k not in ("timestamp", "duration_ms")}
              for line in lines if line.get("event") == "request" and line["path"] == "/webhooks/genesys"]
    assert access[0] == access[1] == {"event": "request", "level": "info", "request_id": "req-1", "method": "POST",
                                      "path": "/webhooks/genesys", "status": 200}

"""POST /webhooks/genesys's common case, answered below Flask.

Ingest is the hot path, and for one event Flask's share of a request (request context,
routing, hooks, the view's decorators, werkzeug's request and response objects) is about
as much worker CPU as the webhook's own parsing. This WSGI middleware answers the case
that is nearly all of the traffic: the exact configured Basic credentials, a JSON body of
at most 1 MiB that parses and matches the contract, a write that commits. Any other
request (wrong or differently spelled credentials, another content type, a body Flask
would refuse, a schema error, a failed write) goes whole to the Flask view in
`webhooks`, the documented reference, which answers it as it always has. What this path
answers is what the view would (tests hold the two to that): the same status, body and
headers, the same request id, access-log line and metrics, and only after the commit.
"""

from __future__ import annotations

import base64
import hmac
import io

from flask import Flask

from .. import requests
from ..metrics.instruments import count_webhook_events
from .webhooks import answer_body, read_deliveries

ROUTE = "/webhooks/genesys"
_REQUEST_ID_KEY = "HTTP_" + requests.REQUEST_ID_HEADER.upper().replace("-", "_")


class WebhookFastPath:
    """WSGI middleware in front of a billing-sync Flask app: `app.wsgi_app = WebhookFastPath(app)`."""

    def __init__(self, app: Flask) -> None:
        self.flask_wsgi_app = app.wsgi_app
        services = app.extensions["billing_sync"]
        self._ingest = services.webhook_ingest
        self._max_body = app.config.get("MAX_CONTENT_LENGTH") or 0  # no limit set: the view judges every body
        self._authorization = _basic_authorization(services.settings.webhook_username,
                                                   services.settings.webhook_password)

    def __call__(self, environ: dict, start_response):
        if environ.get("PATH_INFO") != ROUTE or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_wsgi_app(environ, start_response)
        raw = self._read_if_ours(environ)
        if raw is None:
            return self.flask_wsgi_app(environ, start_response)
        try:
            received = read_deliveries(raw)
        except ValueError:  # NotJson and PayloadError: the view words the 400 or 413
            return self._to_flask(environ, start_response, raw)
        request_id, started = requests.begin(environ.get(_REQUEST_ID_KEY, ""))
        try:
            result = self._ingest.record(received)
        except Exception:  # noqa: BLE001 - rolled back: the view tries once more and answers (500 if it fails)
            requests.end()
            return self._to_flask(environ, start_response, raw)
        try:
            count_webhook_events(accepted=result.accepted, duplicates=result.duplicates)
            body = answer_body(result)
            requests.answered(ROUTE, "POST", ROUTE, 200, started)
        finally:
            requests.end()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  (requests.REQUEST_ID_HEADER, request_id)])
        return [body]

    def _read_if_ours(self, environ: dict) -> bytes | None:
        """The body, if this request is one to answer here; None leaves the request untouched for Flask."""
        authorization = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        # Constant time, whatever the header holds: anything but the exact value is the view's to judge.
        if self._authorization is None or not hmac.compare_digest(authorization, self._authorization):
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH", "")  # none when chunked: the view reads those
        if not (length.isascii() and length.isdigit()) or int(length) > self._max_body:
            return None
        raw = environ["wsgi.input"].read(int(length))
        if len(raw) != int(length):  # the client went away mid-body: the view answers that too
            self._replace_body(environ, raw)
            return None
        return raw

    def _to_flask(self, environ: dict, start_response, raw: bytes):
        self._replace_body(environ, raw)
        return self.flask_wsgi_app(environ, start_response)

    @staticmethod
    def _replace_body(environ: dict, raw: bytes) -> None:
        """The body, already read from the socket, for the view to read again."""
        environ["wsgi.input"] = io.BytesIO(raw)


def _basic_authorization(username: str, password: str) -> bytes | None:
    """The one Authorization header value this path accepts; None when it cannot be that simple.

    A username with ':' cannot be told from the password in Basic credentials: the view
    judges those (and refuses them).
    """
    if ":" in username:
        return None
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())

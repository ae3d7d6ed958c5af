"""The sandbox-only control API (contract §10): loopback only, unauthenticated."""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..errors import GenesysError
from ..faults import FaultError
from .guard import json_body, platform

bp = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")


@bp.before_request
def _loopback_only() -> None:
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise GenesysError(403, "not.authorized", "The sandbox control API is loopback only")


def _object_body() -> dict[str, Any]:
    body = json_body()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise GenesysError(400, "bad.request", "The request body must be a JSON object")
    return body


@bp.post("/conversations")
def place_call() -> tuple[Response, int]:
    body = _object_body()
    for name in ("ani", "dnis"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise GenesysError(400, "invalid.value", f"{name}: must be a string", field=name)
    conversation = platform().calls.place_call(body.get("ani"), body.get("dnis"))
    return jsonify({"id": conversation.id}), 201


@bp.post("/conversations/<conversation_id>/disconnect")
def disconnect(conversation_id: str) -> Response:
    platform().calls.hang_up(conversation_id)
    return jsonify({"id": conversation_id, "state": "disconnected"})


@bp.post("/conversations/<conversation_id>/dtmf")
def dtmf(conversation_id: str) -> tuple[Response, int]:
    platform().calls.press(conversation_id, _object_body().get("digit"))
    return jsonify({"id": conversation_id}), 202


@bp.post("/conversations/<conversation_id>/speech")
def speech(conversation_id: str) -> tuple[Response, int]:
    platform().calls.speak(conversation_id, _object_body().get("text"))
    return jsonify({"id": conversation_id}), 202


@bp.get("/truth")
def truth() -> Response:
    sandbox = platform()
    now = sandbox.clock.now()
    with sandbox.org.locked() as org:
        playbacks = [p.truth(now) for p in org.playbacks.values()]
    return jsonify({"playbacks": playbacks})


@bp.get("/faults")
def faults() -> Response:
    return jsonify(platform().faults.as_json())


@bp.put("/faults")
def set_faults() -> Response:
    try:
        return jsonify(platform().set_faults(json_body()))
    except FaultError as error:
        raise GenesysError(400, "invalid.value", str(error), field=error.field) from None


@bp.post("/billing")
def billing_receive() -> tuple[Response, int, dict[str, str]]:
    answer = platform().billing.receive(request.get_data(), dict(request.headers))
    return jsonify(answer.body), answer.status, answer.headers


@bp.get("/billing")
def billing_received() -> Response:
    return jsonify({"received": platform().billing.received()})

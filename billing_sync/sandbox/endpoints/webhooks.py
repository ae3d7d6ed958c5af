"""Webhook registration (contract §7, extension): /api/v2/webhooks."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..errors import invalid
from .guard import json_body, platform, requires

bp = Blueprint("sandbox_webhooks", __name__, url_prefix="/api/v2/webhooks")


def _page_arg(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid(name, f"must be an integer from 1 to {maximum}")
    return int(raw)


@bp.post("")
@requires("webhook:write")
def create() -> tuple[Response, int]:
    hook = platform().webhooks.create(json_body())
    response = jsonify(hook.view())
    response.headers["Location"] = f"/api/v2/webhooks/{hook.id}"
    return response, 201


@bp.get("")
@requires("webhook:write")
def listing() -> Response:
    size = _page_arg("pageSize", 25, 500)
    number = _page_arg("pageNumber", 1, 1_000_000)
    return jsonify(platform().webhooks.listing(size, number))


@bp.get("/<webhook_id>")
@requires("webhook:write")
def read(webhook_id: str) -> Response:
    return jsonify(platform().webhooks.get(webhook_id).view())


@bp.put("/<webhook_id>")
@requires("webhook:write")
def update(webhook_id: str) -> Response:
    return jsonify(platform().webhooks.update(webhook_id, json_body()).view())


@bp.delete("/<webhook_id>")
@requires("webhook:write")
def delete(webhook_id: str) -> tuple[str, int]:
    platform().webhooks.delete(webhook_id)
    return "", 204

"""Notification channels and subscriptions (contract §8): /api/v2/notifications."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from ..channels import channel_view, parse_topics
from .guard import json_body, platform, requires

bp = Blueprint("sandbox_notifications", __name__, url_prefix="/api/v2/notifications")


@bp.post("/channels")
@requires("event:subscribe")
def create_channel() -> Response:
    sandbox = platform()
    channel = sandbox.channels.create(g.token.client_id)
    return jsonify(channel_view(channel, sandbox.hub.connect_uri(channel.id)))


@bp.get("/channels")
@requires("event:subscribe")
def list_channels() -> Response:
    sandbox = platform()
    channels = sandbox.channels.owned(g.token.client_id)
    return jsonify({"entities": [channel_view(c, sandbox.hub.connect_uri(c.id)) for c in channels]})


@bp.route("/channels/<channel_id>", methods=["HEAD"])
@requires("event:subscribe")
def channel_exists(channel_id: str) -> tuple[str, int]:
    platform().channels.require(channel_id)
    return "", 200


@bp.get("/channels/<channel_id>/subscriptions")
@requires("event:subscribe")
def subscriptions(channel_id: str) -> Response:
    return jsonify({"entities": platform().channels.topics(channel_id)})


@bp.put("/channels/<channel_id>/subscriptions")
@requires("event:subscribe")
def replace_subscriptions(channel_id: str) -> Response:
    entities = platform().channels.subscribe(channel_id, parse_topics(json_body()), replace=True)
    return jsonify({"entities": entities})


@bp.post("/channels/<channel_id>/subscriptions")
@requires("event:subscribe")
def add_subscriptions(channel_id: str) -> Response:
    entities = platform().channels.subscribe(channel_id, parse_topics(json_body()), replace=False)
    return jsonify({"entities": entities})


@bp.delete("/channels/<channel_id>/subscriptions")
@requires("event:subscribe")
def remove_subscriptions(channel_id: str) -> tuple[str, int]:
    platform().channels.unsubscribe_all(channel_id)
    return "", 204

"""Conversations (contract §4, real) and playback control (contract §5, extension)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ..calls import call_conversation_view, generic_conversation_view
from ..errors import GenesysError, invalid
from ..media import MediaError, describe_media
from ..org import Conversation
from ..playback import play_response, playback_view
from .guard import json_body, platform, requires

bp = Blueprint("sandbox_conversations", __name__, url_prefix="/api/v2/conversations")


def _conversation(conversation_id: str) -> Conversation:
    conversation = platform().org.conversations.get(conversation_id)
    if conversation is None:
        raise GenesysError(404, "not.found", f"Unable to find a conversation with id {conversation_id}")
    return conversation


@bp.get("/calls/<conversation_id>")
@requires("conversation:view")
def get_call(conversation_id: str) -> Response:
    with platform().org.locked():
        return jsonify(call_conversation_view(_conversation(conversation_id)))


@bp.get("/<conversation_id>")
@requires("conversation:view")
def get_conversation(conversation_id: str) -> Response:
    with platform().org.locked():
        return jsonify(generic_conversation_view(_conversation(conversation_id)))


@bp.post("/voice/<conversation_id>/actions/play")
@requires("conversation:play")
def play(conversation_id: str) -> tuple[Response, int]:
    url, loop, max_duration = _play_request(json_body())
    try:
        media = describe_media(url)
    except MediaError as error:
        raise invalid("play.url", str(error)) from None
    playback = platform().lifecycle.play(conversation_id, media, loop, max_duration)
    return jsonify(play_response(playback)), 202


@bp.post("/voice/<conversation_id>/actions/play/stop")
@requires("conversation:play")
def stop(conversation_id: str) -> tuple[Response, int]:
    playback = platform().lifecycle.stop(conversation_id)
    return jsonify({"id": playback.id, "state": "stopped"}), 202


@bp.get("/voice/<conversation_id>/playbacks/<playback_id>")
@requires("conversation:view")
def get_playback(conversation_id: str, playback_id: str) -> Response:
    sandbox = platform()
    with sandbox.org.locked() as org:
        playback = org.playbacks.get(playback_id)
        if playback is None or playback.conversation_id != conversation_id:
            raise GenesysError(404, "not.found", f"Unable to find a playback with id {playback_id}")
        return jsonify(playback_view(playback, sandbox.clock.now()))


def _play_request(body: Any) -> tuple[str, bool, int | None]:
    if not isinstance(body, dict) or not isinstance(body.get("play"), dict):
        raise invalid("play", "is required: {\"play\": {\"url\": …}}")
    play = body["play"]
    url = play.get("url")
    if not isinstance(url, str) or not url:
        raise invalid("play.url", "is required")
    loop = play.get("loop", False)
    if not isinstance(loop, bool):
        raise invalid("play.loop", "must be true or false")
    max_duration = play.get("maxDuration")
    if max_duration is not None and (isinstance(max_duration, bool)
                                     or not isinstance(max_duration, int) or max_duration < 1):
        raise invalid("play.maxDuration", "must be a positive number of seconds")
    return url, loop, max_duration

"""The one place playback-control domain errors become HTTP answers."""

from __future__ import annotations

import math

from flask_smorest import abort

from ..playback.errors import (
    ControlNotConfigured, ConversationNotFound, GenesysBusy, GenesysFailed, GenesysNoAnswer, GenesysRefused,
    IdempotencyKeyInFlight, IdempotencyKeyReused, MediaRefused, MediaRejected, NothingPlaying, NotPlayable,
    PlaybackError, RuleNotFound,
)

_STATUS: dict[type[PlaybackError], int] = {
    ConversationNotFound: 404,
    NothingPlaying: 404,
    RuleNotFound: 404,
    NotPlayable: 409,
    IdempotencyKeyInFlight: 409,
    IdempotencyKeyReused: 422,
    GenesysRefused: 502,
    GenesysFailed: 502,
    ControlNotConfigured: 503,
    GenesysNoAnswer: 504,
}


def abort_for(error: PlaybackError, *, media_field: str = "media_url"):
    """Abort the request with the status and body that `error` calls for."""
    if isinstance(error, MediaRefused):
        abort(400, message=f"Invalid {media_field}: {error.rule}: {error.reason}",
              errors={"json": {media_field: [f"{error.rule}: {error.reason}"]}})
    if isinstance(error, MediaRejected):
        abort(400, message=error.message, errors={"json": {media_field: [error.message]}})
    if isinstance(error, GenesysBusy):
        retry_after = max(1, math.ceil(error.retry_after)) if error.retry_after is not None else 1
        abort(503, message=error.message, headers={"Retry-After": str(retry_after)})
    abort(_STATUS.get(type(error), 500), message=error.message)

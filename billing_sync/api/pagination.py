"""Opaque keyset cursors: `?cursor=&limit=`, answered with `next_cursor`."""

from __future__ import annotations

import base64
import binascii
import json

from flask_smorest import abort
from marshmallow import Schema, fields, validate

MAX_LIMIT = 500


class PageArgs(Schema):
    cursor = fields.String(metadata={"description": "next_cursor from the previous page"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_LIMIT))


def encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The row id a page continues after, or a 400 naming `cursor`."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
        if not isinstance(after, int) or after < 0:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        abort(400, message="Invalid cursor: pass next_cursor from a previous page unchanged",
              errors={"query": {"cursor": ["invalid"]}})

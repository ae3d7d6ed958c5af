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


def page_schema(name: str, item_schema: type[Schema]) -> type[Schema]:
    """The `{"items": [...], "next_cursor": ...}` schema of a list of `item_schema`."""
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item_schema), required=True),
        "next_cursor": fields.String(required=True, allow_none=True),
    }, name=name)


def page_answer(items: list, last_id: int | None, more: bool) -> dict:
    """A list answer: the items, and the cursor of the next page when there is one."""
    return {"items": items, "next_cursor": encode_cursor(last_id) if more else None}


def check_window(since, until) -> None:
    """A 400 naming `since` when both bounds are given and `since` is not before `until`."""
    if since is not None and until is not None and since >= until:
        abort(400, message="Invalid query: since must be before until",
              errors={"query": {"since": ["not before until"]}})


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

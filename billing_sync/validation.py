"""Turning nested marshmallow error dicts into one line that names the field."""

from __future__ import annotations

from typing import Any


def first_error(errors: Any, prefix: str = "") -> tuple[str, str]:
    """The dotted path and message of the first error in a marshmallow error tree."""
    if isinstance(errors, dict) and errors:
        key = next(iter(errors))
        name = "" if key == "_schema" else str(key)
        path = ".".join(part for part in (prefix, name) if part)
        return first_error(errors[key], path)
    if isinstance(errors, list) and errors and not isinstance(errors[0], str):
        return first_error(errors[0], prefix)
    message = errors[0] if isinstance(errors, list) and errors else str(errors)
    return prefix or "(body)", message

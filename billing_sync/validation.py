"""Input checks shared by the API and the wire parsers: one line naming the field, instants in UTC,
text a database can hold."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields


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


# PostgreSQL's INTEGER: the largest duration (ms, about 24.8 days) or sequence a column holds.
MAX_INT32 = 2**31 - 1
NUL = "\x00"


class Instant(fields.AwareDateTime):
    """An ISO 8601 instant with an offset, loaded in UTC.

    One that leaves the years 1 to 9999 once in UTC (0001-01-01T00:00:00+01:00) is invalid
    here rather than an OverflowError wherever it is next converted.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Not in the years 1 to 9999 once in UTC.") from None


def find_nul(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string or key holding a NUL character (no database text may), or None."""
    if isinstance(value, str):
        return (path or "(value)") if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return name
            found = find_nul(item, name)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None

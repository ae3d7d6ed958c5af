"""Column kinds of the export datasets, and the SQL that renders each value as canonical text.

The canonical form of a value is what the exports hold: integers as integers, text as
text, timestamps as ISO-8601 UTC with microseconds (`2026-11-24T02:00:01.000000Z`, fixed
width, so text order is time order), JSON as canonical JSON (sorted keys, no spaces).
The database renders timestamps itself (one C call per value instead of a Python datetime
round trip), and for CSV neutralises text against formula injection too (`cell_sql`): that
is what lets a row leave the database as finished CSV text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from ..formula import formula_safe
from ..log import canonical_json

KINDS = ("integer", "text", "timestamp", "json")


class iso_utc(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """A UTC timestamp column as `YYYY-MM-DDTHH:MM:SS.ffffffZ` text, rendered by the database."""

    type = String()
    inherit_cache = True
    name = "iso_utc"


@compiles(iso_utc, "postgresql")
def _iso_utc_postgresql(element, compiler, **kw):
    value = compiler.process(element.clauses, **kw)
    return f"""to_char(({value}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


@compiles(iso_utc, "sqlite")
def _iso_utc_sqlite(element, compiler, **kw):
    # UTCDateTime stores naive UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite
    # DATETIME format, microseconds always present): one space to swap, one Z to add.
    value = compiler.process(element.clauses, **kw)
    return f"(replace({value}, ' ', 'T') || 'Z')"


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column: its name, kind and the model column (or expression) it reads."""

    name: str
    kind: str
    source: Any
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind must be one of {KINDS}, got {self.kind!r}")

    def canonical_sql(self) -> ColumnElement:
        """The value in canonical form, as far as SQL can render it (JSON is done in Python)."""
        if self.kind == "timestamp":
            return iso_utc(self.source).label(self.name)
        return self.source.label(self.name)

    def cell_sql(self) -> ColumnElement:
        """The value the database writes as this CSV cell's text before quoting; NULL stays NULL.

        Text is neutralised (`formula_safe`), timestamps rendered; integers stay integers (any
        text rendering of one is its decimal digits); JSON, rendered in Python, as stored.
        """
        if self.kind == "timestamp":
            return iso_utc(self.source).label(self.name)
        if self.kind == "text":
            return formula_safe(self.source).label(self.name)
        return self.source.label(self.name)

    def text_sql(self) -> ColumnElement:
        """`cell_sql` as text, with NULL as ''."""
        value = self.cell_sql().element
        if self.kind == "integer":
            value = cast(value, String)
        return (func.coalesce(value, "") if self.nullable else value).label(self.name)

    @property
    def needs_python(self) -> bool:
        return self.kind == "json"

    def to_canonical(self, value: Any) -> Any:
        if self.kind == "json" and value is not None:
            return canonical_json(value)
        return value

"""The registry of exportable datasets: name → columns, windowed ordered query, canonical rows.

A dataset is one small module that builds a `Dataset` and calls `register(...)`; the
module is imported at the bottom of this file. Everything else (CSV, the SQLite file and
its manifest, the HTTP export, the CLI's choices, offline verification) works from the
registry and needs no change when a dataset is added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.expression import ColumnElement, FromClause

from .columns import Column, iso_utc


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until): what an export covers, both timezone-aware."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until must carry a UTC offset")
        if self.since >= self.until:
            raise ValueError("since must be before until")


@dataclass(frozen=True)
class Dataset:
    """What one export table holds, and how to read it for a window, in canonical order."""

    name: str
    description: str
    columns: tuple[Column, ...]
    # The WHERE clauses selecting a window's rows.
    window: Callable[[Window], Sequence[ColumnElement[bool]]]
    # Column names giving the canonical row order; the last one must be unique.
    order: tuple[str, ...]
    # The FROM clause when the columns span an outer join; None to let SQLAlchemy derive it.
    source: Callable[[], FromClause] | None = None
    _python_columns: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or not set(self.order) <= set(names):
            raise ValueError(f"dataset {self.name}: column names must be unique and include {self.order}")
        python = tuple(i for i, c in enumerate(self.columns) if c.needs_python)
        object.__setattr__(self, "_python_columns", python)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def renders_in_sql(self) -> bool:
        """True when the database can render every cell (no column is finished in Python)."""
        return not self._python_columns

    def select(self, window: Window, *, as_text: bool = False) -> Select:
        """The window's rows in canonical order: canonical values, or CSV cell text."""
        return self.rows_of([c.text_sql() if as_text else c.canonical_sql() for c in self.columns], window)

    def rows_of(self, exprs: Sequence[ColumnElement[Any]], window: Window) -> Select:
        """`exprs` (built from this dataset's columns) for each row of the window, in canonical order."""
        query = select(*exprs)
        if self.source is not None:
            query = query.select_from(self.source())
        by_name = {c.name: c for c in self.columns}
        return query.where(*self.window(window)).order_by(*(by_name[n].source for n in self.order))

    def count(self, window: Window) -> Select:
        """How many rows the window holds (for progress bars)."""
        query = select(func.count())
        if self.source is not None:
            query = query.select_from(self.source())
        else:
            query = query.select_from(self.columns[0].source.table)
        return query.where(*self.window(window))

    def canonical_rows(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """Rows from `select()` (either form) with the Python-rendered columns finished."""
        if not self._python_columns:
            return rows
        columns = self.columns
        out = []
        for row in rows:
            values = list(row)
            for i in self._python_columns:
                values[i] = columns[i].to_canonical(values[i])
            out.append(tuple(values))
        return out


_REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.name in _REGISTRY:
        raise ValueError(f"dataset {dataset.name!r} is registered twice")
    _REGISTRY[dataset.name] = dataset
    return dataset


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Dataset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(names())}") from None


def all_datasets() -> tuple[Dataset, ...]:
    return tuple(_REGISTRY.values())


# Each module registers one dataset; the order here is the order of the SQLite file's tables.
from . import events, billing, actions  # noqa: E402, F401, I001

__all__ = ["Column", "Dataset", "Window", "all_datasets", "get", "iso_utc", "names", "register"]

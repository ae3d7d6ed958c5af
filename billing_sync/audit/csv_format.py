"""CSV records for the exports: RFC 4180, UTF-8, and no cell a spreadsheet would run as a formula.

Records end with CRLF; a cell is quoted only when it holds a comma, a double quote, CR or
LF, with inner double quotes doubled. A NULL is an empty cell. Text cells follow the
formula rule of `formula.py`; integer columns are never prefixed: they can only hold
`-?[0-9]+`, which is a number and never a formula, so a negative amount stays a number
(`-150`). Timestamps (`2026-...Z`) and hashes cannot start with those characters.

`csv.writer` is the reference every faster path is tested against.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from .datasets import Dataset
from .formula import neutralise, restore

__all__ = ["RecordEncoder", "header", "needs_no_quoting", "neutralise", "restore"]


def header(dataset: Dataset) -> str:
    return ",".join(dataset.column_names) + "\r\n"


def needs_no_quoting(text: str, records: int, columns: int) -> bool:
    """Whether `records` unquoted records of `columns` cells, CRLF-ended, were written exactly as `text`.

    Every record writes `columns - 1` commas, one CR and one LF of its own; more of them
    (or any double quote) can only come from inside a cell, and such a cell needed quoting.
    Four passes in C over the text, instead of a look at every cell in Python.
    """
    return ('"' not in text and text.count(",") == records * (columns - 1)
            and text.count("\n") == records and text.count("\r") == records)


class RecordEncoder:
    """Encodes batches of rows from `Dataset.select(as_text=True)`: SQL-rendered cells are finished text."""

    def __init__(self, dataset: Dataset) -> None:
        self._dataset = dataset
        self._python_columns = tuple(i for i, c in enumerate(dataset.columns) if c.needs_python)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def encode(self, rows: Sequence[Sequence[str]]) -> str:
        """The CSV records of `rows`, each ending in CRLF."""
        if not rows:
            return ""
        rows = self._finished(rows)
        fast = self._fast(rows)
        return fast if fast is not None else self._careful(rows)

    def _finished(self, rows: Sequence[Sequence[str]]) -> Sequence[Sequence[str]]:
        """Rows with the Python-rendered cells (JSON) rendered and neutralised."""
        if not self._python_columns:
            return rows
        out = []
        for row in self._dataset.canonical_rows(rows):
            cells = list(row)
            for i in self._python_columns:
                cells[i] = neutralise(cells[i])
            out.append(cells)
        return out

    def _fast(self, rows: Sequence[Sequence[str]]) -> str | None:
        """Join in C, then prove from the joined text that no cell needed quoting."""
        try:
            body = "\r\n".join(map(",".join, rows)) + "\r\n"
        except TypeError:  # a NULL in a column that was not declared nullable
            return None
        return body if needs_no_quoting(body, len(rows), len(self._dataset.columns)) else None

    def _careful(self, rows: Sequence[Sequence[str]]) -> str:
        """Cell by cell: the reference the fast paths must always agree with."""
        for row in rows:
            self._writer.writerow(["" if v is None else v for v in row])
        out = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return out

"""CSV records for the exports: RFC 4180, UTF-8, and no cell a spreadsheet would run as a formula.

The rule, exactly: a text cell whose first character is one of `= + - @`, TAB, CR or an
apostrophe gets one apostrophe (`'`) put in front of it. Spreadsheets show such a cell as
text instead of evaluating it. Prefixing the apostrophe itself too makes the rule
reversible: a reader recovers the stored value by dropping one leading apostrophe from
any text cell that has one (`restore`). Integer columns are never prefixed: they can only
hold `-?[0-9]+`, which is a number and never a formula, so a negative amount stays a
number (`-150`). Timestamps (`2026-...Z`) and hashes cannot start with those characters.
A NULL is an empty cell.

Records end with CRLF; a cell is quoted only when it holds a comma, a double quote, CR or
LF, with inner double quotes doubled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from .datasets import Dataset

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
_MUST_QUOTE = (",", '"', "\r", "\n")


def neutralise(value: str) -> str:
    """The text cell for `value`: an apostrophe in front if it could start a formula."""
    return "'" + value if value and value[0] in FORMULA_STARTS else value


def restore(cell: str) -> str:
    """The stored value of a text cell written by `neutralise`."""
    return cell[1:] if cell.startswith("'") else cell


def header(dataset: Dataset) -> str:
    return ",".join(dataset.column_names) + "\r\n"


class RecordEncoder:
    """Encodes batches of rows (all cells already text, from `Dataset.select(as_text=True)`)."""

    def __init__(self, dataset: Dataset) -> None:
        self._dataset = dataset
        self._text_columns = tuple(i for i, c in enumerate(dataset.columns) if c.kind in ("text", "json"))
        self._separators = len(dataset.columns) - 1
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def encode(self, rows: Sequence[Sequence[str]]) -> str:
        """The CSV records of `rows`, each ending in CRLF."""
        if not rows:
            return ""
        rows = self._dataset.canonical_rows(rows)
        fast = self._fast(rows)
        return fast if fast is not None else self._careful(rows)

    def _fast(self, rows: Sequence[Sequence[str]]) -> str | None:
        """Join in C, then prove from the joined text that no cell needed quoting or a prefix.

        With no comma, quote, CR or LF inside any cell (the separator counts add up), cells
        start exactly at the text's start and after each comma or LF, so three substring
        tests per formula character settle neutralisation for the whole batch.
        """
        try:
            body = "\r\n".join(map(",".join, rows))
        except TypeError:  # a NULL in a column that was not declared nullable
            return None
        n = len(rows)
        if ('"' in body or body.count(",") != n * self._separators
                or body.count("\n") != n - 1 or body.count("\r") != n - 1):
            return None
        for start in FORMULA_STARTS:
            if body.startswith(start) or ("," + start) in body or ("\n" + start) in body:
                return None
        return body + "\r\n"

    def _careful(self, rows: Sequence[Sequence[str]]) -> str:
        """Cell by cell: the reference the fast path must always agree with."""
        text_columns = self._text_columns
        for row in rows:
            cells = ["" if v is None else v for v in row]
            for i in text_columns:
                cells[i] = neutralise(cells[i])
            self._writer.writerow(cells)
        out = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return out

"""SQLite's fast CSV records: one `printf` per row writes the record, Python proves each batch.

The database writes each row as one unquoted record. Two pieces of a cell's rendering are
cheaper done once per batch than once per cell in SQL, where each is a function call and
a string allocation per row:

- **Timestamps** (never NULL) are printed as stored, `YYYY-MM-DD HH:MM:SS.ffffff`, with the
  `Z` in the format; the space becomes `T` in Python, for the whole batch at once.
- **The proof that no cell needed quoting**: the batch's commas, double quotes, CRs, LFs
  and spaces, in order (`bytes.translate`, one pass in C), must be exactly what the format
  itself writes: a comma between cells, CRLF after each record, one space in each such
  timestamp. Then no cell holds a comma, quote, CR or LF, and every space is a
  timestamp's own, so replacing every space replaces exactly theirs (what `iso_utc`'s
  `replace` does in SQL).

A batch whose separators are right but which holds other spaces (in a text cell) has its
timestamps mended record by record. A batch holding a cell that needs quoting is not
`Printed`'s to write (`render` returns None), nor one holding a text cell with a NUL
character: printf would stop at it, so such a record comes back NULL.
"""

from __future__ import annotations

from sqlalchemy import case, func, null, or_
from sqlalchemy.sql.expression import ColumnElement

from .datasets import Column, Dataset

# Everything but the bytes the proof looks at: , " CR LF and space.
_NOT_LOOKED_AT = bytes(b for b in range(256) if b not in b',"\r\n ')


def _printed_as_stored(column: Column) -> bool:
    """A timestamp that is never NULL: printed as stored, its space mended in Python."""
    return column.kind == "timestamp" and not column.nullable and not getattr(column.source, "nullable", True)


class Printed:
    """A dataset's `printf` record and the batch proof that goes with it."""

    def __init__(self, dataset: Dataset) -> None:
        self._columns = dataset.columns
        self._stamps = tuple(i for i, c in enumerate(dataset.columns) if _printed_as_stored(c))
        ends = ["," for _ in dataset.columns[:-1]] + ["\r\n"]
        self._format = "".join(("%sZ" if i in self._stamps else "%s") + end for i, end in enumerate(ends))
        self._separators = "".join((" " if i in self._stamps else "") + end for i, end in enumerate(ends)).encode()
        self._bare_separators = "".join(ends).encode()

    def record(self) -> ColumnElement:
        """The row as one unquoted CSV record; NULL when a text cell holds a NUL, where printf would stop."""
        cells = [c.source if i in self._stamps else c.cell_sql() for i, c in enumerate(self._columns)]
        record = func.printf(self._format, *cells)
        holds_nul = [func.instr(c.source, func.char(0)) > 0 for c in self._columns if c.kind == "text"]
        return case((or_(*holds_nul), null()), else_=record) if holds_nul else record

    def render(self, text: str, records: int) -> bytes | None:
        """The batch's `records` printed records as finished CSV bytes; None if a cell needed quoting."""
        data = text.encode()
        seen = data.translate(None, _NOT_LOOKED_AT)
        if seen == self._separators * records:
            return data.replace(b" ", b"T") if self._stamps else data
        if seen.replace(b" ", b"") != self._bare_separators * records:
            return None
        return self._mended(text).encode()

    def _mended(self, text: str) -> str:
        """Each timestamp's spaces made `T`, record by record: a text cell of this batch holds a space."""
        out = []
        for line in text.split("\r\n")[:-1]:
            cells = line.split(",")
            for i in self._stamps:
                cells[i] = cells[i].replace(" ", "T")
            out.append(",".join(cells))
        out.append("")
        return "\r\n".join(out)

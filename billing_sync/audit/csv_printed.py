"""SQLite's fast CSV records: one `printf` per row writes the record, Python proves each batch.

The database writes each row as one unquoted record. What is cheaper done once per batch
than once per cell in SQL (where each is a function call, often a string allocation, per
row) is done in Python over the batch's bytes:

- **Timestamps** (never NULL) are printed as stored, `YYYY-MM-DD HH:MM:SS.ffffff`, with the
  `Z` in the format; the space becomes `T` in Python, for the whole batch at once.
- **The proof that no cell needed quoting**: the batch's commas, double quotes, CRs, LFs
  and spaces, in order (`bytes.translate`, one pass in C), must be exactly what the format
  itself writes: a comma between cells, CRLF after each record, one space in each such
  timestamp. Then no cell holds a comma, quote, CR or LF, and every space is a
  timestamp's own, so replacing every space replaces exactly theirs (what `iso_utc`'s
  `replace` does in SQL).
- **A NUL character in a text cell**, where printf stops writing the cell. The first way
  (`padded`) prints each text cell at least as wide as its stored bytes (`%-*s`, width
  `length(CAST(cell AS BLOB))`, O(1)): a cell cut short at a NUL is padded with spaces, so
  the proof above fails, as it does for a space of a text cell's own. Either way the
  batch is not this way's to write, and the export goes on with the second way
  (`careful`): each record NULL when a text cell holds a NUL (`instr`, a scan of every text
  cell of every row: what the first way saves), and a batch holding spaces of its own has
  its timestamps mended record by record.

A batch `render` refuses (None) goes on with the next way from its first row.
"""

from __future__ import annotations

from sqlalchemy import LargeBinary, case, cast, func, null, or_
from sqlalchemy.sql.expression import ColumnElement

from .datasets import Column, Dataset
from .formula import formula_safe_or_null_at_nul

# Everything but the bytes the proof looks at: , " CR LF and space.
_NOT_LOOKED_AT = bytes(b for b in range(256) if b not in b',"\r\n ')


def _printed_as_stored(column: Column) -> bool:
    """A timestamp that is never NULL: printed as stored, its space mended in Python."""
    return column.kind == "timestamp" and not column.nullable and not getattr(column.source, "nullable", True)


class Printed:
    """A dataset's `printf` record, and the batch proof and finishing that go with it."""

    def __init__(self, dataset: Dataset, *, careful: bool = False) -> None:
        self._columns = dataset.columns
        self._careful = careful
        self._stamps = tuple(i for i, c in enumerate(dataset.columns) if _printed_as_stored(c))
        padded = () if careful else tuple(i for i, c in enumerate(dataset.columns) if c.kind == "text")
        ends = ["," for _ in dataset.columns[:-1]] + ["\r\n"]
        cells = ["%sZ" if i in self._stamps else "%-*s" if i in padded else "%s" for i in range(len(ends))]
        self._format = "".join(cell + end for cell, end in zip(cells, ends))
        self._padded = padded
        self._separators = "".join((" " if i in self._stamps else "") + end for i, end in enumerate(ends)).encode()
        self._bare_separators = "".join(ends).encode()

    def record(self) -> ColumnElement:
        """The row as one unquoted CSV record (careful: NULL when a text cell holds a NUL)."""
        args = []
        for i, column in enumerate(self._columns):
            if i in self._stamps:
                args.append(column.source)
            elif i in self._padded:
                args += [func.length(cast(column.source, LargeBinary)), formula_safe_or_null_at_nul(column.source)]
            else:
                args.append(column.cell_sql())
        record = func.printf(self._format, *args)
        if not self._careful:
            return record
        holds_nul = [func.instr(c.source, func.char(0)) > 0 for c in self._columns if c.kind == "text"]
        return case((or_(*holds_nul), null()), else_=record) if holds_nul else record

    def render(self, text: str, records: int) -> bytes | None:
        """The batch's `records` printed records as finished CSV bytes; None if this way cannot prove them."""
        data = text.encode()
        seen = data.translate(None, _NOT_LOOKED_AT)
        if seen == self._separators * records:
            return data.replace(b" ", b"T") if self._stamps else data
        if not self._careful or seen.replace(b" ", b"") != self._bare_separators * records:
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


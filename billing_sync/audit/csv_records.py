"""A dataset's CSV records, straight from the database a batch at a time, as UTF-8 bytes.

Three ways to the same bytes, the fastest that applies:

- **PostgreSQL, every cell rendered in SQL**: `COPY (SELECT cells) TO STDOUT (FORMAT csv)`.
  The server renders and quotes every cell in C, with the rules of `csv.writer`'s minimal
  quoting (a cell holding a comma, quote, CR or LF is quoted, inner quotes doubled). Two
  differences are mended: an empty string comes out as `""` (to tell it from NULL), so text
  cells are sent as NULL when empty; and records end in LF, which becomes CRLF (`crlf`:
  every LF outside quotes, never one inside a quoted cell).
- **SQLite, every cell rendered in SQL** (timestamps finished per batch): one `printf` per
  row writes the record, unquoted, and `csv_printed.Printed` proves from the batch's bytes
  that no cell needed quoting. At the first batch it cannot prove (or holding a text cell
  with a NUL character, where printf would stop), the export goes on from that batch's
  first row with the third way.
- **Otherwise** (a JSON column, rendered in Python): cells, encoded by `RecordEncoder`.

Python handles one object per row or fewer in the first two: that is what makes a
million-row export cheap. `csv.writer` (`RecordEncoder._careful`) is the reference all
three are tested against.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from itertools import chain
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func
from sqlalchemy.sql.expression import ColumnElement

from . import reading
from .csv_format import RecordEncoder
from .csv_printed import Printed
from .datasets import Column, Dataset, Window

if TYPE_CHECKING:  # psycopg is imported only when PostgreSQL is read
    import psycopg
    from psycopg.pq.abc import PGconn

Batch = tuple[int, bytes]  # how many records, and their bytes


def batches(connection: Connection, dataset: Dataset, window: Window) -> Iterator[Batch]:
    """The window's records in canonical order, `reading.BATCH_ROWS` at a time."""
    batch_rows = reading.BATCH_ROWS
    if not dataset.renders_in_sql:
        return _encoded(connection, dataset, window, batch_rows)
    if connection.dialect.name == "postgresql":
        return _copied(connection, dataset, window, batch_rows)
    return _printed(connection, dataset, window, batch_rows)


def _encoded(connection: Connection, dataset: Dataset, window: Window, batch_rows: int,
             skip: int = 0) -> Iterator[Batch]:
    encoder = RecordEncoder(dataset)
    for rows in reading.batches(connection, dataset, window, as_text=True, batch_rows=batch_rows, skip=skip):
        yield len(rows), encoder.encode(rows).encode()


def _copy_cell(column: Column) -> ColumnElement:
    cell = column.cell_sql()
    # COPY writes an empty string as "" (NULL is the unquoted empty cell); csv.writer writes nothing.
    return func.nullif(cell, "").label(column.name) if column.kind == "text" else cell


def _copied(connection: Connection, dataset: Dataset, window: Window, batch_rows: int) -> Iterator[Batch]:
    sql, params = reading.driver_sql(connection, dataset.rows_of([_copy_cell(c) for c in dataset.columns], window))
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(
            f"COPY ({sql}) TO STDOUT (FORMAT csv, ENCODING 'UTF8')", params) as copy:
        for records, data in _copy_records(copy, cursor.connection.pgconn, batch_rows):
            yield records, crlf(data)


def _copy_records(copy: psycopg.Copy, pgconn: PGconn, batch_rows: int) -> Iterator[tuple[int, bytes]]:
    """COPY's records (one per CopyData message), `batch_rows` at a time, joined.

    A record libpq has already received is taken from it directly, one C call
    (`PQgetCopyData`, without waiting); only when none is there does psycopg's `read`
    wait for the next, with the GIL released. Each is copied out at once, so that libpq's
    buffer for it is freed while still in the cache. A million records took 0.33 s of CPU
    this way, 0.51 s with `read` for each, 1.0 s when kept in a list until joined.
    """
    import psycopg

    take = pgconn.get_copy_data
    data = bytearray()
    records = 0
    while True:
        size, record = take(1)
        if size == 0:
            record = copy.read()  # empty at the end, the command's result read
            if not record:
                break
        elif size == -1:  # the end, taken here: read the command's result
            _finish(pgconn)
            break
        elif size < -1:
            raise psycopg.OperationalError(pgconn.get_error_message())
        data += record
        records += 1
        if records == batch_rows:
            yield records, bytes(data)
            data.clear()
            records = 0
    if records:
        yield records, bytes(data)


def _finish(pgconn: PGconn) -> None:
    from psycopg import errors, pq

    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise errors.error_from_result(result)


def crlf(data: bytes) -> bytes:
    """COPY's LF-ended records, CRLF-ended: every LF outside quotes ends a record.

    In well-formed CSV every quote opens or closes a quoted stretch (an inner quote is
    doubled: it closes and reopens one), so between the quotes, every other piece is
    outside them.
    """
    if b'"' not in data:
        return data.replace(b"\n", b"\r\n")
    pieces = data.split(b'"')
    pieces[::2] = [piece.replace(b"\n", b"\r\n") for piece in pieces[::2]]
    return b'"'.join(pieces)


def _printed(connection: Connection, dataset: Dataset, window: Window, batch_rows: int) -> Iterator[Batch]:
    """`Printed` records, its padded way then its careful way, then cells: each from the first row the last refused."""
    done = 0
    for printed in (Printed(dataset), Printed(dataset, careful=True)):
        finished = yield from _printed_with(connection, dataset, window, batch_rows, printed, skip=done)
        if finished is None:
            return
        done = finished
    # A cell from here on needs quoting (or holds a NUL): cells, from the first row of this batch.
    yield from _encoded(connection, dataset, window, batch_rows, skip=done)


def _printed_with(connection: Connection, dataset: Dataset, window: Window, batch_rows: int, printed: Printed,
                  skip: int) -> Generator[Batch, None, int | None]:
    """Records printed `printed`'s way from row `skip` on; None when all were, else the first row it refused."""
    query = dataset.rows_of([printed.record()], window)
    sql, params = reading.driver_sql(connection, query.offset(skip) if skip else query)
    done = skip
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch_rows):
            try:
                text = "".join(chain.from_iterable(rows))
            except TypeError:  # a NULL record: a cell with a NUL
                return done
            data = printed.render(text, len(rows))
            if data is None:
                return done
            done += len(rows)
            yield len(rows), data
    finally:
        cursor.close()
    return None

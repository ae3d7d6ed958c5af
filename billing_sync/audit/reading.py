"""Reading datasets for export: one consistent snapshot, rows in batches, constant memory.

PostgreSQL reads through a server-side cursor (`yield_per`, so SQLAlchemy streams results
with a named cursor) in a REPEATABLE READ, read-only transaction: every dataset and the
chain head come from the same snapshot. SQLite reads in batches (`fetchmany`) inside one
deferred read transaction, which WAL keeps consistent without blocking writers. Either
may also be read through the driver's own cursor (`driver_sql`), in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Executable, select

from ..db import Database
from ..models import AuditChainHead
from .datasets import Dataset, Window

BATCH_ROWS = 5000

Progress = Callable[[int], None]


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A connection in a read-only transaction that sees one state of the database."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            # BEGIN now: reads through the driver's own cursor are in the same transaction.
            connection.begin()
        try:
            yield connection
        finally:
            connection.rollback()


def batches(
    connection: Connection, dataset: Dataset, window: Window, *, as_text: bool = False,
    batch_rows: int | None = None, skip: int = 0,
) -> Iterator[Sequence[Sequence[Any]]]:
    """The window's rows, in canonical order, a batch at a time; the first `skip` rows left out."""
    query = dataset.select(window, as_text=as_text)
    if skip:
        query = query.offset(skip)
    result = connection.execution_options(yield_per=batch_rows or BATCH_ROWS).execute(query)
    try:
        yield from result.partitions()
    finally:
        result.close()


def driver_sql(connection: Connection, statement: Executable) -> tuple[str, Any]:
    """`statement` as the driver's own SQL and parameters, each bound value processed as SQLAlchemy would.

    For reading through the driver itself (PostgreSQL's COPY, SQLite rows without SQLAlchemy's
    Row objects): the same SQL and values SQLAlchemy would send.
    """
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    params = compiled.construct_params()
    for name, value in params.items():
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            params[name] = process(value)
    if compiled.positiontup is not None:
        return str(compiled), tuple(params[name] for name in compiled.positiontup)
    return str(compiled), params


def count(connection: Connection, dataset: Dataset, window: Window) -> int:
    return connection.execute(dataset.count(window)).scalar_one()


def chain_head(connection: Connection) -> tuple[int, str]:
    """The audit chain's last id and hash, as this snapshot sees them."""
    row = connection.execute(
        select(AuditChainHead.last_id, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
    ).one()
    return row.last_id, row.last_hash

"""The standalone SQLite export: every dataset for a window, plus a `manifest` table.

Each dataset becomes a table of its canonical values (INTEGER for integer columns, TEXT
for the rest), with an index on its canonical order. The manifest is a table of
(name, value) text pairs:

  format            billing-sync audit export 1
  generated_at      ISO-8601 UTC
  generated_by      the actor who ran the export
  since, until      the window, ISO-8601 UTC, [since, until)
  chain_head_id     the audit chain's last id when the export was read
  chain_head_hash   and its hash
  datasets          comma-separated table names
  <table>.rows      row count
  <table>.columns   comma-separated column names
  <table>.order     the columns giving the canonical order
  <table>.sha256    SHA-256 of the table's canonical content (`table_digest`)

A table's canonical content is UTF-8 text: the JSON array of its column names, then each
row as a JSON array in canonical order, each followed by a newline; JSON is canonical
(sorted keys, `,` and `:` without spaces, non-ASCII kept as is). Any SQLite reader can
recompute it: `billing-sync audit verify --export FILE` does.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..db import Database
from ..models import utcnow
from . import reading
from .datasets import Dataset, Window, all_datasets
from .exports import ExportResult, file_sha256, iso, record
from .log import canonical_json
from .reading import Progress

FORMAT = "billing-sync audit export 1"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableDigest:
    """SHA-256 of a table's canonical content, fed the header and then rows in order."""

    def __init__(self, column_names: Sequence[str]) -> None:
        self._hash = hashlib.sha256((canonical_json(list(column_names)) + "\n").encode())

    def update(self, rows: Iterable[Sequence[Any]]) -> None:
        self._hash.update("".join(canonical_json(list(row)) + "\n" for row in rows).encode())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _create_table(out: sqlite3.Connection, dataset: Dataset) -> str:
    columns = ", ".join(
        f"{quote(c.name)} {'INTEGER' if c.kind == 'integer' else 'TEXT'}{'' if c.nullable else ' NOT NULL'}"
        for c in dataset.columns
    )
    out.execute(f"CREATE TABLE {quote(dataset.name)} ({columns})")
    order = ", ".join(quote(name) for name in dataset.order)
    out.execute(f"CREATE INDEX {quote(dataset.name + '_order')} ON {quote(dataset.name)} ({order})")
    marks = ", ".join("?" for _ in dataset.columns)
    return f"INSERT INTO {quote(dataset.name)} VALUES ({marks})"


def _copy_dataset(connection, out: sqlite3.Connection, dataset: Dataset, window: Window,
                  progress: Progress | None) -> tuple[int, str]:
    insert = _create_table(out, dataset)
    digest = TableDigest(dataset.column_names)
    count = 0
    for batch in reading.batches(connection, dataset, window):
        rows = dataset.canonical_rows(batch)
        out.executemany(insert, rows)
        digest.update(rows)
        count += len(rows)
        if progress:
            progress(len(rows))
    return count, digest.hexdigest()


def export_sqlite(db: Database, window: Window, path: Path, *, actor: str,
                  progress: Progress | None = None) -> ExportResult:
    """Write every registered dataset for `window` into a new SQLite file at `path`."""
    result = ExportResult(format="sqlite", window=window)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    manifest: dict[str, str] = {"format": FORMAT, "generated_at": iso(utcnow()), "generated_by": actor,
                                "since": iso(window.since), "until": iso(window.until)}
    try:
        out = sqlite3.connect(partial, isolation_level=None)
        try:
            # A scratch file until it is renamed: no journal needed; durability comes from fsync below.
            out.execute("PRAGMA journal_mode=OFF")
            out.execute("PRAGMA synchronous=OFF")
            out.execute("BEGIN")
            with reading.snapshot(db) as connection:
                head_id, head_hash = reading.chain_head(connection)
                for dataset in all_datasets():
                    rows, digest = _copy_dataset(connection, out, dataset, window, progress)
                    result.rows[dataset.name] = rows
                    manifest.update({
                        f"{dataset.name}.rows": str(rows),
                        f"{dataset.name}.columns": ",".join(dataset.column_names),
                        f"{dataset.name}.order": ",".join(dataset.order),
                        f"{dataset.name}.sha256": digest,
                    })
            manifest.update(chain_head_id=str(head_id), chain_head_hash=head_hash,
                            datasets=",".join(result.rows))
            out.execute("CREATE TABLE manifest (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            out.executemany("INSERT INTO manifest VALUES (?, ?)", sorted(manifest.items()))
            out.execute("COMMIT")
        finally:
            out.close()
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    result.sha256 = file_sha256(path)
    result.size = path.stat().st_size
    result.extra = {"chain_head_id": head_id, "chain_head_hash": head_hash}
    record(db, actor, result)
    return result

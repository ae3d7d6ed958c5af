"""CSV exports of one dataset, to a file or streamed, each recorded in the audit chain.

Every export appends an `audit.exported` entry: who, which dataset and format, the
window, the row count and the SHA-256 of exactly the bytes produced. A streamed export
the client abandoned is recorded too, with `completed: false`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..db import Database
from . import csv_records, log, reading
from .csv_format import header
from .datasets import Dataset, Window
from .reading import Progress

EXPORTED = "audit.exported"


def iso(moment) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class ExportResult:
    """What an export produced: rows per dataset, bytes, and their SHA-256."""

    format: str
    window: Window
    rows: dict[str, int] = field(default_factory=dict)
    sha256: str = ""
    size: int = 0
    completed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {
            "format": self.format, "datasets": sorted(self.rows), "since": iso(self.window.since),
            "until": iso(self.window.until), "rows": self.rows, "sha256": self.sha256,
            "bytes": self.size, "completed": self.completed, **self.extra,
        }


def record(db: Database, actor: str, result: ExportResult) -> None:
    """Chain the export onto the audit log (its own transaction)."""
    subject = f"export:{result.format}:{','.join(sorted(result.rows))}"
    with db.write() as session:
        log.append(session, actor, EXPORTED, subject, result.details())


def csv_bytes(db: Database, dataset: Dataset, window: Window, result: ExportResult,
              *, progress: Progress | None = None) -> Iterator[bytes]:
    """The CSV export as UTF-8 chunks: the header first, then one chunk per batch of rows.

    The header goes out before the query runs; each batch is handed on before the next is
    fetched, so memory holds one batch whatever the window's size.
    """
    yield header(dataset).encode()
    result.rows[dataset.name] = 0
    with reading.snapshot(db) as connection:
        for rows, data in csv_records.batches(connection, dataset, window):
            result.rows[dataset.name] += rows
            if progress:
                progress(rows)
            yield data


def stream_csv(db: Database, dataset: Dataset, window: Window, *, actor: str,
               progress: Progress | None = None) -> Iterator[bytes]:
    """UTF-8 CSV chunks for an HTTP response; records the export when the stream ends."""
    result = ExportResult(format="csv", window=window, completed=False)
    digest = hashlib.sha256()
    chunks = csv_bytes(db, dataset, window, result, progress=progress)
    try:
        for data in chunks:
            digest.update(data)
            result.size += len(data)
            yield data
        result.completed = True
    finally:
        chunks.close()  # end the read transaction before writing the audit entry
        result.sha256 = digest.hexdigest()
        record(db, actor, result)


def export_csv(db: Database, dataset: Dataset, window: Window, path: Path, *, actor: str,
               progress: Progress | None = None) -> ExportResult:
    """Write the CSV export to `path` (atomically: a partial file never has its name)."""
    result = ExportResult(format="csv", window=window)
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as out:
            for data in csv_bytes(db, dataset, window, result, progress=progress):
                digest.update(data)
                result.size += len(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    result.sha256 = digest.hexdigest()
    record(db, actor, result)
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

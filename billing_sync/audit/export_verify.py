"""Verifying an exported SQLite file offline, against its own manifest.

Needs nothing but the file: each table's canonical content is recomputed and compared
with the manifest's row count and SHA-256, and the exported `actions` are re-walked link
by link (ids without gaps, each prev_hash the hash before it, each hash recomputed; the
genesis hash before id 1; the manifest's chain head when the export reaches it).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .exports import file_sha256
from .log import GENESIS_HASH, entry_hash
from .reading import BATCH_ROWS, Progress
from .sqlite_export import FORMAT, TableDigest, quote
from .verify import ChainReport


class ExportFileError(Exception):
    """The file is not an export this version can read (not SQLite, no manifest, ...)."""


@dataclass
class ExportReport:
    ok: bool
    sha256: str
    manifest: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    chain: ChainReport | None = None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok, "sha256": self.sha256, "rows": self.rows, "problems": self.problems,
            "chain": self.chain.as_dict() if self.chain else None,
            "window": {"since": self.manifest.get("since"), "until": self.manifest.get("until")},
            "chain_head": {"id": self.manifest.get("chain_head_id"), "hash": self.manifest.get("chain_head_hash")},
        }


def verify_export(path: Path, *, progress: Progress | None = None) -> ExportReport:
    """Check every table of an exported file against its manifest, and re-walk its chain."""
    if not path.is_file():
        raise ExportFileError(f"{path}: no such file")
    sha256 = file_sha256(path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ExportFileError(f"{path}: cannot open: {error}") from None
    try:
        manifest = _manifest(db, path)
        report = ExportReport(ok=True, sha256=sha256, manifest=manifest)
        tables = [t for t in manifest.get("datasets", "").split(",") if t]
        present = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for extra in sorted(present - set(tables) - {"manifest"}):
            report.problems.append(f"table {extra} is not in the manifest")
        for table in tables:
            _check_table(db, table, manifest, present, report, progress)
        if "actions" in tables and "actions" in present:
            report.chain = walk_exported_chain(db, manifest)
            if not report.chain.ok:
                chain = report.chain
                report.problems.append(
                    f"actions: chain broken at id {chain.broken_id} ({chain.reason}): "
                    f"expected {chain.expected}, found {chain.found}")
    finally:
        db.close()
    report.ok = not report.problems
    return report


def _manifest(db: sqlite3.Connection, path: Path) -> dict[str, str]:
    try:
        manifest = dict(db.execute("SELECT name, value FROM manifest"))
    except sqlite3.DatabaseError as error:
        raise ExportFileError(f"{path}: not an export (no readable manifest: {error})") from None
    if manifest.get("format") != FORMAT:
        raise ExportFileError(f"{path}: unknown export format {manifest.get('format')!r}")
    return manifest


def _check_table(db, table: str, manifest: dict[str, str], present: set[str], report: ExportReport,
                 progress: Progress | None) -> None:
    if table not in present:
        report.problems.append(f"{table}: table missing")
        return
    columns = manifest.get(f"{table}.columns", "").split(",")
    order = manifest.get(f"{table}.order", "").split(",")
    actual = [row[1] for row in db.execute(f"PRAGMA table_info({quote(table)})")]
    if actual != columns:
        report.problems.append(f"{table}: columns {actual} differ from the manifest's {columns}")
        return
    digest, count = TableDigest(columns), 0
    cursor = db.execute(
        f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} ORDER BY {', '.join(map(quote, order))}")
    while rows := cursor.fetchmany(BATCH_ROWS):
        digest.update(rows)
        count += len(rows)
        if progress:
            progress(len(rows))
    report.rows[table] = count
    if str(count) != manifest.get(f"{table}.rows"):
        report.problems.append(f"{table}: {count} rows, the manifest says {manifest.get(f'{table}.rows')}")
    if digest.hexdigest() != manifest.get(f"{table}.sha256"):
        report.problems.append(
            f"{table}: content SHA-256 {digest.hexdigest()} differs from the manifest's {manifest.get(f'{table}.sha256')}")


def walk_exported_chain(db: sqlite3.Connection, manifest: dict[str, str]) -> ChainReport:
    """Re-walk the exported stretch of the audit chain; the first broken link, or its head."""
    cursor = db.execute(
        "SELECT id, created_at, actor, action, subject, details, prev_hash, hash FROM actions ORDER BY id")
    prev_hash, expected_id, count = None, None, 0
    for entry_id, created_at, actor, action, subject, details, entry_prev, entry_hash_found in cursor:
        if expected_id is None:
            prev_hash = GENESIS_HASH if entry_id == 1 else entry_prev  # the stretch's anchor
        elif entry_id != expected_id:
            return _broken(count, prev_hash, entry_id, str(expected_id), str(entry_id), "gap in ids")
        if entry_prev != prev_hash:
            return _broken(count, prev_hash, entry_id, prev_hash, entry_prev, "prev_hash mismatch")
        try:
            digest = entry_hash(
                entry_prev, id=entry_id, created_at=datetime.fromisoformat(created_at), actor=actor,
                action=action, subject=subject, details=json.loads(details),
            )
        except (TypeError, ValueError) as error:
            return _broken(count, prev_hash, entry_id, "a well-formed entry", str(error), "unreadable entry")
        if digest != entry_hash_found:
            return _broken(count, prev_hash, entry_id, digest, entry_hash_found, "hash mismatch")
        prev_hash, expected_id, count = entry_hash_found, entry_id + 1, count + 1
    head_id, head_hash = int(manifest.get("chain_head_id", "0")), manifest.get("chain_head_hash")
    last_id = (expected_id or 1) - 1
    if count and last_id == head_id and prev_hash != head_hash:
        return _broken(count, prev_hash, head_id, head_hash, prev_hash, "head does not match manifest")
    if last_id > head_id:
        return _broken(count, prev_hash, last_id, str(head_id), str(last_id), "entries past the manifest's head")
    return ChainReport(ok=True, verified=count, head=prev_hash or GENESIS_HASH)


def _broken(count, head, broken_id, expected, found, reason) -> ChainReport:
    return ChainReport(ok=False, verified=count, head=head or GENESIS_HASH, broken_id=broken_id,
                       expected=expected, found=found, reason=reason)

"""`billing-sync export` and `billing-sync audit verify`: what finance runs to take and prove the record."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import click
from sqlalchemy import select
from flask.cli import ScriptInfo, with_appcontext

from ..models import AuditChainHead
from . import datasets, reading
from .export_verify import ExportFileError, verify_export
from .exports import export_csv
from .sqlite_export import export_sqlite
from .verify import verify_chain


def parse_moment(text: str, option: str) -> datetime:
    """`2026-11-01` (UTC midnight) or an ISO-8601 timestamp with an offset, as aware UTC."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date (2026-11-01) or an ISO-8601 timestamp (2026-11-01T08:00:00Z)",
            param_hint=option) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no UTC offset: add Z or +01:00, or give a date",
                                 param_hint=option)
    return moment.astimezone(UTC)


def parse_window(since: str, until: str) -> datasets.Window:
    start, end = parse_moment(since, "--since"), parse_moment(until, "--until")
    if start >= end:
        raise click.UsageError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return datasets.Window(start, end)


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli"


@contextmanager
def progress_bar(total: Callable[[], int], what: str) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on a terminal (stderr); nothing at all when stderr is not a TTY."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total(), desc=what, unit=" rows", unit_scale=True, file=sys.stderr, leave=False) as bar:
        yield bar.update


def _services():
    from .. import services

    return services()


@click.command("export")
@click.option("--dataset", type=click.Choice(datasets.names()), help="the table to export (csv only)")
@click.option("--format", "fmt", type=click.Choice(["csv", "sqlite"]), required=True)
@click.option("--since", required=True, help="start, inclusive: 2026-11-01 or 2026-11-01T08:00:00Z")
@click.option("--until", required=True, help="end, exclusive")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def export_command(dataset: str | None, fmt: str, since: str, until: str, output: Path) -> None:
    """Export a window of the audit trail: one dataset as CSV, or every dataset as SQLite."""
    window = parse_window(since, until)
    if fmt == "csv" and not dataset:
        raise click.UsageError(f"--format csv needs --dataset ({'|'.join(datasets.names())})")
    if fmt == "sqlite" and dataset:
        raise click.UsageError("--format sqlite always holds every dataset: drop --dataset")
    if not output.parent.is_dir():
        raise click.UsageError(f"-o {output}: directory {output.parent} does not exist")
    db = _services().db
    chosen = [datasets.get(dataset)] if dataset else list(datasets.all_datasets())

    def total() -> int:
        with reading.snapshot(db) as connection:
            return sum(reading.count(connection, d, window) for d in chosen)

    with progress_bar(total, f"export {fmt}") as progress:
        if fmt == "csv":
            result = export_csv(db, chosen[0], window, output, actor=cli_actor(), progress=progress)
        else:
            result = export_sqlite(db, window, output, actor=cli_actor(), progress=progress)
    rows = ", ".join(f"{name} {count}" for name, count in result.rows.items())
    click.echo(f"exported {rows} rows to {output} ({result.size} bytes, sha256 {result.sha256})")


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit log and exported files."""


@audit_group.command("verify")
@click.option("--export", "export_file", type=click.Path(dir_okay=False, path_type=Path),
              help="verify this exported SQLite file offline, against its own manifest")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def audit_verify(export_file: Path | None, as_json: bool) -> None:
    """Walk the audit chain (or an exported file); exit 1 at the first broken link."""
    if export_file is not None:
        _verify_file(export_file, as_json)
        return
    ctx = click.get_current_context()
    with ctx.ensure_object(ScriptInfo).load_app().app_context():
        _verify_database(as_json)


def _verify_database(as_json: bool) -> None:
    db = _services().db
    with db.read() as session:
        head_id = session.execute(select(AuditChainHead.last_id).where(AuditChainHead.id == 1)).scalar_one()
        with progress_bar(lambda: head_id, "verify chain") as progress:
            report = verify_chain(session, progress=progress)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    elif report.ok:
        click.echo(f"audit chain verified: {report.verified} entries, head {report.head}")
    if report.ok:
        return
    if not as_json:
        click.echo(
            f"audit chain BROKEN at id {report.broken_id} ({report.reason}): "
            f"expected {report.expected}, found {report.found}; {report.verified} entries verified before it",
            err=True,
        )
    sys.exit(1)


def _verify_file(path: Path, as_json: bool) -> None:
    try:
        with progress_bar(lambda: _manifest_rows(path), "verify export") as progress:
            report = verify_export(path, progress=progress)
    except ExportFileError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        m = report.manifest
        click.echo(f"{path}: sha256 {report.sha256}")
        click.echo(f"window {m.get('since')} .. {m.get('until')}, generated {m.get('generated_at')} by {m.get('generated_by')}")
        click.echo("rows: " + ", ".join(f"{name} {count}" for name, count in report.rows.items()))
        if report.chain is not None and report.chain.ok:
            click.echo(f"actions chain verified: {report.chain.verified} entries, head {report.chain.head}")
        click.echo(f"chain head at export: id {m.get('chain_head_id')}, hash {m.get('chain_head_hash')}")
        for problem in report.problems:
            click.echo(f"FAILED: {problem}", err=True)
        click.echo("export verified" if report.ok else "export FAILED verification", err=not report.ok)
    if not report.ok:
        sys.exit(1)


def _manifest_rows(path: Path) -> int:
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            values = db.execute("SELECT value FROM manifest WHERE name LIKE '%.rows'").fetchall()
        return sum(int(value) for (value,) in values)
    except (sqlite3.Error, ValueError):
        return 0

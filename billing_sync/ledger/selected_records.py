"""Billing records a query selects, written set-based with their outbox rows and audit entries.

`records.py` writes records the caller built in Python, a dict each. Reconciliation
heals tens of thousands of discrepancies in one run, and building, sending and reading
back each record there cost far more than writing it: here one `INSERT … SELECT` writes
every record, one more writes their outbox rows (each webhook body rendered by the
database from `records.webhook_body`'s own template), and their audit entries, rendered
by the database from one entry `audit.rendered` made, are chained in one append. The
records, bodies and entries are exactly those `records.py` would write for the same rows.

The database renders a text only where every text in it is plain printable ASCII other
than `"` and `\\`, which JSON writes as it is; a record with any other character (none
among Genesys' ids) gets its body and entry from Python.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import Connection, bindparam, insert, text

from .. import audit
from ..models import BillingRecord, OutboxMessage, utcnow
from .records import audit_entries, idempotency_key, record_json, webhook_body

# The columns a source query selects, in this order; `created_at` must be `:created_at`.
RECORD_COLUMNS = ("idempotency_key", "kind", "playback_id", "conversation_id", "cause", "duration_ms",
                  "billable_seconds", "rate_per_minute", "amount_minor", "currency", "provenance", "corrects",
                  "ended_at", "created_at")
_TEXT_FIELDS = ("kind", "playback_id", "conversation_id", "rate_per_minute", "currency", "provenance")
_NUMBER_FIELDS = ("id", "duration_ms", "billable_seconds", "amount_minor", "corrects")
_MARK = "@@"


def key_parts(kind: str, cause: str) -> tuple[str, str]:
    """`records.idempotency_key` of a playback as the text before and after its playback id."""
    head, _, tail = idempotency_key(kind, _MARK, cause).partition(_MARK)
    return head, tail


def write_selected(connection: Connection, source: str, params: dict, *, actor: str) -> list[int]:
    """Insert the records `source` selects, skipping keys already taken, with their outbox rows
    and audit entries; the new records' ids, in order.

    `source` is a SELECT of `RECORD_COLUMNS` with `:created_at` as the last; it is given
    `params` and `created_at` (now, one instant for every record written here).
    """
    created_at = utcnow()
    ids = _insert(connection, source, params | {"created_at": created_at})
    if ids:
        _insert_messages(connection, ids, created_at)
        audit.append_rendered(connection, _audit_entries(connection, ids, actor, created_at), created_at)
    return ids


def _insert(connection: Connection, source: str, params: dict) -> list[int]:
    columns = ", ".join(RECORD_COLUMNS)
    # SQLite reads `ON CONFLICT` after a bare FROM as a join's; a WHERE ends the SELECT first.
    statement = text(f"INSERT INTO billing_records ({columns}) SELECT * FROM ({source}) AS selected WHERE 1 = 1"
                     f" ON CONFLICT (playback_id, kind, cause) DO NOTHING RETURNING id")
    created_type = BillingRecord.__table__.c.created_at.type
    statement = statement.bindparams(bindparam("created_at", type_=created_type))
    return sorted(connection.execute(statement, params).scalars())


def _insert_messages(connection: Connection, ids: list[int], created_at: datetime) -> None:
    """The outbox rows of records `ids`: bodies by the database where it writes them as JSON
    does, by `webhook_body` for the rest."""
    postgres = connection.dialect.name == "postgresql"
    among = _among_ids(postgres)
    plain = " AND ".join(_plain_text(f"r.{name}", postgres) for name in _TEXT_FIELDS)
    connection.execute(text(
        "INSERT INTO outbox (record_id, message_id, payload, status, attempts, next_attempt_at, created_at,"
        " updated_at)"
        f" SELECT r.id, r.idempotency_key, {_body_sql()}, 'pending', 0, r.created_at, r.created_at,"
        f" r.created_at FROM billing_records AS r WHERE {among} AND {plain}"
    ), {"ids": _ids_param(ids, postgres), "created_iso": created_at.isoformat()})
    rest = connection.execute(text(
        f"SELECT r.* FROM billing_records AS r WHERE {among} AND NOT ({plain}) ORDER BY r.id"
    ), {"ids": _ids_param(ids, postgres)}).all()
    if rest:
        connection.execute(insert(OutboxMessage), [
            {"record_id": row.id, "message_id": row.idempotency_key,
             "payload": webhook_body(record_json(_with_created(row, created_at))), "status": "pending",
             "attempts": 0, "next_attempt_at": created_at, "created_at": created_at, "updated_at": created_at}
            for row in rest])


def _audit_entries(connection: Connection, ids: list[int], actor: str, created_at: datetime) -> list:
    """`records.audit_entries` of records `ids`, rendered for `audit.append_rendered`: by the
    database from a rendered template where every text is plain (as bodies), else by Python."""
    postgres = connection.dialect.name == "postgresql"
    marks = {name: f"{_MARK}{name}{_MARK}" for name in (*_TEXT_FIELDS, *_NUMBER_FIELDS, "idempotency_key")}
    [entry] = audit_entries([(marks["id"], marks["idempotency_key"])], [marks], actor=actor)
    template = audit.rendered(entry, created_at)
    parts = ", ".join(f"{_sql_text(value)} AS rendered_{n}" for n, value in enumerate(
        (template.action, template.subject, template.details, template.body_head, template.body_tail)))
    plain = " AND ".join(_plain_text(f"r.{name}", postgres) for name in (*_TEXT_FIELDS, "idempotency_key"))
    rows = connection.execute(text(
        f"SELECT CASE WHEN {plain} THEN 1 ELSE 0 END AS plain, {parts}, r.* FROM billing_records AS r"
        f" WHERE {_among_ids(postgres)} ORDER BY r.id"), {"ids": _ids_param(ids, postgres)}).all()
    entries = []
    for row in rows:
        if row.plain:
            entries.append(audit.RenderedEntry(actor, *row[1:6]))
        else:
            [entry] = audit_entries([(row.id, row.idempotency_key)], [row._mapping], actor=actor)
            entries.append(audit.rendered(entry, created_at))
    return entries


def _body_sql() -> str:
    """SQL for `webhook_body(record_json(r))`, `created_at` being the parameter `created_iso`:
    the body of a template record, its values replaced by the columns."""
    template = {name: f"{_MARK}{name}{_MARK}" for name in (*_TEXT_FIELDS, *_NUMBER_FIELDS, "created_at")}
    template["created_at"] = _Iso(template["created_at"])
    return _sql_text(webhook_body(record_json(SimpleNamespace(**template)))).replace(
        f"' || r.created_at || '", "' || :created_iso || '")


def _sql_text(template: str) -> str:
    """SQL for `template` (JSON text made from a record of marks) with each mark replaced by
    the column of `billing_records AS r` it stands for: numbers unquoted, null for no number."""
    rendered = template.replace("'", "''")
    for name in _NUMBER_FIELDS:
        value = f"CAST(r.{name} AS TEXT)"
        rendered = rendered.replace(f'"{_MARK}{name}{_MARK}"', f"' || coalesce({value}, 'null') || '")
        rendered = rendered.replace(f"{_MARK}{name}{_MARK}", f"' || {value} || '")
    for name in (*_TEXT_FIELDS, "idempotency_key", "created_at"):
        rendered = rendered.replace(f"{_MARK}{name}{_MARK}", f"' || r.{name} || '")
    if _MARK in rendered:
        raise AssertionError(f"a field the SQL rendering does not know: {template}")
    return f"'{rendered}'"


def _plain_text(column: str, postgres: bool) -> str:
    """SQL: `column` is printable ASCII without `"` or `\\`, so JSON writes it unchanged."""
    if postgres:
        return f"({column} !~ '[^ -~]' AND strpos({column}, '\"') = 0 AND strpos({column}, chr(92)) = 0)"
    return f"({column} NOT GLOB '*[^ -~]*' AND instr({column}, '\"') = 0 AND instr({column}, char(92)) = 0)"


def _among_ids(postgres: bool) -> str:
    return "r.id = ANY(:ids)" if postgres else "r.id IN (SELECT value FROM json_each(:ids))"


def _ids_param(ids: list[int], postgres: bool):
    return ids if postgres else "[" + ",".join(map(str, ids)) + "]"


def _with_created(row, created_at: datetime) -> SimpleNamespace:
    return SimpleNamespace(**(dict(row._mapping) | {"created_at": created_at}))


class _Iso(str):
    """A text `record_json` takes for a time: its `isoformat` is itself."""

    def isoformat(self) -> str:
        return str(self)

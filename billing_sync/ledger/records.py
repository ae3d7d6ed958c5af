"""Billing records: charges, adjustments and reversals, each with its outbox row and audit entry.

Everything here runs in the caller's transaction and never commits. A record is never
updated or deleted (the database refuses it); a correction is a new record that names the
one it corrects. Each record's idempotency key, `<kind>:<playback_id>:<cause>`, is unique
per (playback, kind, cause) in the database, so the same cause can never bill twice
whatever the code above does; it is also the `webhook-id` of every delivery attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import ARRAY, Connection, any_, bindparam, func, insert, select
from sqlalchemy.dialects import sqlite

from .. import audit
from ..db import json_value, rows_json
from ..models import BillingRecord, OutboxMessage, Playback, utcnow
from .rating import Tariff, amount_minor, billable_seconds

CHARGEABLE_STATES = frozenset({"completed", "stopped"})
CHARGE_CAUSE = "terminal"
EVENT_TYPE = "billing.record.created"

# SQLite (PostgreSQL gets `_PG_RECORD_CTES`), built once so SQLAlchemy compiles them once.
_SQLITE_INSERT_RECORDS = (sqlite.insert(BillingRecord)
                          .on_conflict_do_nothing(index_elements=["playback_id", "kind", "cause"])
                          .returning(BillingRecord.id, BillingRecord.idempotency_key))
_INSERT_MESSAGES = insert(OutboxMessage)

_PG_RECORD_CTES = """given_records AS (
  SELECT * FROM jsonb_to_recordset(%(records)s::jsonb)
    AS r(idempotency_key text, kind text, playback_id text, conversation_id text, cause text, duration_ms bigint,
         billable_seconds bigint, rate_per_minute text, amount_minor bigint, currency text, provenance text,
         corrects bigint, ended_at timestamptz, created_at timestamptz, body_head text, body_tail text)
), records AS (
  INSERT INTO billing_records (idempotency_key, kind, playback_id, conversation_id, cause, duration_ms,
                               billable_seconds, rate_per_minute, amount_minor, currency, provenance, corrects,
                               ended_at, created_at)
  SELECT idempotency_key, kind, playback_id, conversation_id, cause, duration_ms, billable_seconds,
         rate_per_minute, amount_minor, currency, provenance, corrects, ended_at, created_at
  FROM {source}
  ON CONFLICT (playback_id, kind, cause) DO NOTHING
  RETURNING id, idempotency_key
), messages AS (
  INSERT INTO outbox (record_id, message_id, payload, status, attempts, next_attempt_at, created_at, updated_at)
  SELECT records.id, records.idempotency_key, g.body_head || records.id || g.body_tail, 'pending', 0,
         g.created_at, g.created_at, g.created_at
  FROM records JOIN given_records AS g USING (idempotency_key)
)"""


@dataclass(frozen=True, slots=True)
class Ended:
    """A playback that reached its terminal state in this unit of work: what rating needs."""

    playback_id: str
    conversation_id: str
    state: str
    duration_ms: int
    ended_at: datetime | None
    provenance: str


@dataclass(frozen=True, slots=True)
class Correction:
    """What one playback's billing should come to: the record corrected and the true duration."""

    record_id: int
    duration_ms: int


class CorrectionError(Exception):
    """A correction that cannot be made (unknown record, reversing a reversal, ...)."""


def idempotency_key(kind: str, playback_id: str, cause: str) -> str:
    return f"{kind}:{playback_id}:{cause}"


def record_json(row) -> dict:
    """A record as the API and the billing webhook show it (DESIGN.md's billing record)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "playback_id": row.playback_id,
        "conversation_id": row.conversation_id,
        "duration_ms": row.duration_ms,
        "billable_seconds": row.billable_seconds,
        "rate_per_minute": row.rate_per_minute,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "provenance": row.provenance,
        "corrects": row.corrects,
        "created_at": _iso(row.created_at),
    }


def webhook_body(record: dict) -> str:
    """The exact body posted for a record, fixed once so every attempt sends the same bytes."""
    return json.dumps({"type": EVENT_TYPE, "timestamp": record["created_at"], "data": record},
                      separators=(",", ":"))


def charge_ended(connection: Connection, ended: list[Ended], tariff: Tariff, *, actor: str) -> list[int]:
    """Charge every completed or stopped playback in `ended` (failed ones are not charged).

    Set-based: one INSERT for the records, one for their outbox rows, then one audit entry
    per charge. A playback already charged is skipped by the unique key; returns new ids.
    """
    return _write(connection, charge_rows(ended, tariff), actor=actor)


def charge_rows(ended: list[Ended], tariff: Tariff) -> list[dict]:
    """The charge records for the completed or stopped playbacks in `ended`, by playback id."""
    now = utcnow()
    rows = []
    for item in sorted(ended, key=lambda e: e.playback_id):
        if item.state not in CHARGEABLE_STATES:
            continue
        rating = tariff.rate(item.duration_ms)
        rows.append({
            "idempotency_key": idempotency_key("charge", item.playback_id, CHARGE_CAUSE),
            "kind": "charge", "playback_id": item.playback_id, "conversation_id": item.conversation_id,
            "cause": CHARGE_CAUSE, "duration_ms": item.duration_ms,
            "billable_seconds": rating.billable_seconds, "rate_per_minute": tariff.rate_text,
            "amount_minor": rating.amount_minor, "currency": tariff.currency,
            "provenance": item.provenance, "corrects": None, "ended_at": item.ended_at, "created_at": now,
        })
    return rows


def reverse(connection: Connection, record_id: int, *, cause: str, actor: str,
            provenance: str = "reconciliation") -> int:
    """A reversal of one record: the same seconds and amount, negated. Idempotent per cause."""
    original = _lock_record(connection, record_id)
    if original.kind == "reversal":
        raise CorrectionError(f"record {record_id} is a reversal; correct it with an adjustment")
    existing = _existing(connection, original.playback_id, "reversal", cause)
    if existing is not None:
        return existing
    row = _correction_row(original, "reversal", cause, provenance,
                          -original.duration_ms, -original.billable_seconds, -original.amount_minor)
    return _write(connection, [row], actor=actor)[0]


def adjust(connection: Connection, record_id: int, *, duration_ms: int, tariff: Tariff, cause: str,
           actor: str, provenance: str = "reconciliation") -> int | None:
    """Bring a playback's billing to `duration_ms` played, with a record of the difference.

    The difference is against the sum of every record of the playback, rated at the corrected
    record's rate and currency (its increment and minimum are the tariff's). None when the
    sums already agree. Idempotent per cause.
    """
    made = adjust_many(connection, [Correction(record_id, duration_ms)], tariff=tariff, cause=cause, actor=actor,
                       provenance=provenance)
    return made[0] if made else None


def adjust_many(connection: Connection, corrections: list[Correction], *, tariff: Tariff, cause: str,
                actor: str, provenance: str = "reconciliation") -> list[int]:
    """`adjust` for many records in a handful of statements, whatever their number.

    Returns the ids of the adjustments for `cause` that now exist for them (made here or
    before); a correction whose playback's sums already agree makes none. One correction
    per playback: a later one for the same playback is ignored.
    """
    originals = _lock_records(connection, [c.record_id for c in corrections])
    playback_ids = sorted({original.playback_id for original in originals.values()})
    existing = dict(connection.execute(
        select(BillingRecord.playback_id, BillingRecord.id)
        .where(_among(connection, BillingRecord.playback_id, playback_ids), BillingRecord.kind == "adjustment",
               BillingRecord.cause == cause)
    ).all())
    nets = {(playback_id, currency): sums for playback_id, currency, *sums in connection.execute(
        select(BillingRecord.playback_id, BillingRecord.currency, func.sum(BillingRecord.duration_ms),
               func.sum(BillingRecord.billable_seconds), func.sum(BillingRecord.amount_minor))
        .where(_among(connection, BillingRecord.playback_id, playback_ids))
        .group_by(BillingRecord.playback_id, BillingRecord.currency)
    )}
    rows, seen = [], set(existing)
    for correction in corrections:
        original = originals[correction.record_id]
        if original.playback_id in seen:
            continue
        seen.add(original.playback_id)
        net = nets.get((original.playback_id, original.currency), (0, 0, 0))
        seconds = billable_seconds(correction.duration_ms, tariff.increment_seconds, tariff.minimum_seconds)
        amount = amount_minor(Decimal(original.rate_per_minute), seconds, original.currency)
        deltas = (correction.duration_ms - int(net[0]), seconds - int(net[1]), amount - int(net[2]))
        if deltas != (0, 0, 0):
            rows.append(_correction_row(original, "adjustment", cause, provenance, *deltas))
    return sorted([*existing.values(), *_write(connection, rows, actor=actor)])


def _lock_record(connection: Connection, record_id: int):
    """The record corrected, with its playback locked so corrections of it queue up."""
    return _lock_records(connection, [record_id])[record_id]


def _lock_records(connection: Connection, record_ids: list[int]) -> dict:
    """The records corrected by id, with their playbacks locked (in id order: no deadlocks)."""
    wanted = sorted(set(record_ids))
    originals = {row.id: row for row in connection.execute(
        select(BillingRecord).where(_among(connection, BillingRecord.id, wanted)))}
    missing = [record_id for record_id in wanted if record_id not in originals]
    if missing:
        raise CorrectionError(f"no billing record {missing[0]}")
    connection.execute(
        select(Playback.id)
        .where(_among(connection, Playback.playback_id, sorted({row.playback_id for row in originals.values()})))
        .order_by(Playback.id).with_for_update()
    ).all()
    return originals


def _among(connection: Connection, column, values: list):
    """SQL: `column` is one of `values`. PostgreSQL gets them as one array parameter: psycopg
    would otherwise parse a statement with a placeholder for each of thousands of values."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def _existing(connection: Connection, playback_id: str, kind: str, cause: str) -> int | None:
    return connection.scalar(
        select(BillingRecord.id).where(BillingRecord.playback_id == playback_id,
                                       BillingRecord.kind == kind, BillingRecord.cause == cause)
    )


def _correction_row(original, kind: str, cause: str, provenance: str, duration_ms: int,
                    seconds: int, amount: int) -> dict:
    return {
        "idempotency_key": idempotency_key(kind, original.playback_id, cause),
        "kind": kind, "playback_id": original.playback_id, "conversation_id": original.conversation_id,
        "cause": cause, "duration_ms": duration_ms, "billable_seconds": seconds,
        "rate_per_minute": original.rate_per_minute, "amount_minor": amount, "currency": original.currency,
        "provenance": provenance, "corrects": original.id, "ended_at": original.ended_at,
        "created_at": utcnow(),
    }


def _write(connection: Connection, rows: list[dict], *, actor: str) -> list[int]:
    """Insert records (skipping keys already taken), their outbox rows, then their audit entries."""
    created = insert_records(connection, rows)
    audit.append_many(connection, audit_entries(created, rows, actor=actor))
    return [record_id for record_id, _ in created]


def insert_records(connection: Connection, rows: list[dict]) -> list[tuple[int, str]]:
    """Records (skipping keys already taken) and their outbox rows: (id, key) of the new ones, by id."""
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.cursor()
        cursor.execute(f"WITH {pg_record_ctes('given_records')}\nSELECT id, idempotency_key FROM records",
                       {"records": pg_records_json(rows)})
        return sorted(cursor.fetchall())
    return _insert_with_messages(connection, rows)


def audit_entries(created: list[tuple[int, str]], rows: list[dict], *, actor: str) -> list[audit.NewEntry]:
    """One audit entry per record created, in id order."""
    by_key = {row["idempotency_key"]: row for row in rows}
    return [audit.NewEntry(actor, f"billing.{by_key[key]['kind']}.created", f"billing_record:{record_id}",
                           _audit_details(by_key[key]))
            for record_id, key in created]


def _audit_details(row: dict) -> dict:
    return {"idempotency_key": row["idempotency_key"], "playback_id": row["playback_id"],
            "amount_minor": row["amount_minor"], "currency": row["currency"],
            "billable_seconds": row["billable_seconds"], "rate_per_minute": row["rate_per_minute"],
            "corrects": row["corrects"]}


def _insert_with_messages(connection: Connection, rows: list[dict]) -> list[tuple[int, str]]:
    """SQLite: the records whose key is not taken yet, then their outbox rows."""
    by_key = {row["idempotency_key"]: row for row in rows}
    created = sorted((record_id, key) for record_id, key in connection.execute(_SQLITE_INSERT_RECORDS, rows))
    if created:
        connection.execute(_INSERT_MESSAGES, [_message(record_id, by_key[key]) for record_id, key in created])
    return created


def _message(record_id: int, row: dict) -> dict:
    record = record_json(SimpleNamespace(id=record_id, **row))
    return {"record_id": record_id, "message_id": row["idempotency_key"], "payload": webhook_body(record),
            "status": "pending", "attempts": 0, "next_attempt_at": row["created_at"],
            "created_at": row["created_at"], "updated_at": row["created_at"]}


def pg_records_json(rows: list[dict]) -> str:
    """The `records` parameter of `pg_record_ctes`: the rows, each with its webhook body around its id."""
    return rows_json([{**row, "body_head": head, "body_tail": tail}
                      for row in rows for head, tail in (webhook_body_around_id(row),)])


def pg_record_ctes(source: str) -> str:
    """PostgreSQL CTEs `given_records`, `records` and `messages`: the records of `%(records)s`
    selected by `source` (`given_records`, or a join of it) inserted with their outbox rows,
    each body numbered by the server. `records` returns (id, idempotency_key) of the new ones."""
    return _PG_RECORD_CTES.replace("{source}", source)


def webhook_body_around_id(row: dict) -> tuple[str, str]:
    """The webhook body of a record not numbered yet, as the text before and after its id.

    Written out field by field, in `record_json`'s order, as `webhook_body` writes them
    (json.dumps would build and walk the same record for every charge of a batch).
    """
    v = json_value
    created = v(_iso(row["created_at"]))
    return (f'{{"type":{_EVENT_TYPE_JSON},"timestamp":{created},"data":{{"id":',
            f',"kind":{v(row["kind"])},"playback_id":{v(row["playback_id"])},'
            f'"conversation_id":{v(row["conversation_id"])},"duration_ms":{v(row["duration_ms"])},'
            f'"billable_seconds":{v(row["billable_seconds"])},"rate_per_minute":{v(row["rate_per_minute"])},'
            f'"amount_minor":{v(row["amount_minor"])},"currency":{v(row["currency"])},'
            f'"provenance":{v(row["provenance"])},"corrects":{v(row["corrects"])},"created_at":{created}}}}}')


_EVENT_TYPE_JSON = json.dumps(EVENT_TYPE)


def _iso(value: datetime) -> str:
    return value.isoformat()

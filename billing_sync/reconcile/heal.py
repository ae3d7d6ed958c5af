"""Healing: billing records for what a run can prove, written set-based (`ledger/selected_records.py`).

Two rules, each switchable: a playback the stream saw end but the webhook never reported
is charged from its stream evidence; a webhook duration that both the stream and
analytics contradict is adjusted to the stream's. Each rule is one `INSERT … SELECT` over
the run's open discrepancies (records, then their outbox rows and audit entries, in a
handful of statements whatever their number), then one UPDATE marking them healed.

Rating stays `ledger/rating.py`'s: Python rates each distinct duration (and rate) the
discrepancies hold, and the statement joins those ratings; it never computes an amount.

Idempotency keys make a second run over the same window heal nothing twice: the charge's
cause is the same `terminal` the webhook's would have had (so a late webhook cannot charge
again), the adjustment's is `reconcile:duration_mismatch`.
"""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import Connection, text, update

from ..ledger.rating import Tariff, amount_minor, billable_seconds
from ..ledger.records import CHARGE_CAUSE, CHARGEABLE_STATES
from ..ledger.selected_records import key_parts, write_selected
from ..models import BillingRecord, Discrepancy
from .compare import DURATION_CAUSE

ACTOR = "reconciliation"

_RATED_COLUMNS = ("duration_ms bigint, rate_per_minute text, currency text, billable_seconds bigint,"
                  " amount_minor bigint")
_RATED = f"{_RATED_COLUMNS}, PRIMARY KEY (duration_ms, rate_per_minute, currency)"
_OPEN = "d.run_id = :run_id AND d.kind = :kind AND d.status = 'open'"
_CHARGEABLE = ", ".join(f"'{state}'" for state in sorted(CHARGEABLE_STATES))
_MISSING = f"{_OPEN} AND d.stream_state IN ({_CHARGEABLE})"
# When the stream saw the playback end: its first stream terminal event, kept on its row by ingest.
_FIRST_STREAM_END = "(SELECT p.stream_terminal_at FROM playbacks AS p WHERE p.playback_id = d.playback_id)"
# CROSS JOIN: SQLite then looks each discrepancy's rating up by its key, never the reverse.
_CHARGES = f"""
SELECT :key_head || d.playback_id || :key_tail, 'charge', d.playback_id, d.conversation_id, :cause, d.stream_ms,
       rated.billable_seconds, :rate_per_minute, rated.amount_minor, :currency, 'stream', CAST(NULL AS BIGINT),
       {_FIRST_STREAM_END}, :created_at
FROM discrepancies AS d CROSS JOIN heal_ratings AS rated
WHERE {_MISSING}
  AND rated.duration_ms = d.stream_ms AND rated.rate_per_minute = :rate_per_minute AND rated.currency = :currency
ORDER BY d.playback_id"""

_CORROBORATED = f"{_OPEN} AND d.corroborated = {{true}}"
_CORRECTED = "JOIN billing_records AS c ON c.playback_id = d.playback_id AND c.kind = 'charge'"
# The difference against every record of the playback in the charge's currency, as `records.adjust`.
# Each sum is looked up per playback: the planner, blind to discrepancies written in this
# transaction, must not be able to join an aggregate of them once per row.
_NET = ("(SELECT sum(b.{column}) FROM billing_records AS b"
        " WHERE b.playback_id = c.playback_id AND b.currency = c.currency)")
_ADJUSTMENTS = f"""
SELECT :key_head || playback_id || :key_tail, 'adjustment', playback_id, conversation_id, :cause, duration_ms,
       billable_seconds, rate_per_minute, amount_minor, currency, 'stream', corrects, ended_at, :created_at
FROM (SELECT c.playback_id, c.conversation_id, c.rate_per_minute, c.currency, c.id AS corrects, c.ended_at,
             d.stream_ms - {_NET.format(column="duration_ms")} AS duration_ms,
             rated.billable_seconds - {_NET.format(column="billable_seconds")} AS billable_seconds,
             rated.amount_minor - {_NET.format(column="amount_minor")} AS amount_minor
      FROM discrepancies AS d
      {_CORRECTED}
      CROSS JOIN heal_ratings AS rated
      WHERE {_CORROBORATED}
        AND rated.duration_ms = d.stream_ms AND rated.rate_per_minute = c.rate_per_minute
        AND rated.currency = c.currency) AS difference
WHERE duration_ms <> 0 OR billable_seconds <> 0 OR amount_minor <> 0
ORDER BY playback_id"""
# Heals of a playback queue up on its row (in id order, as ingest and `records.adjust` take
# them: no deadlocks), before any record is written: a charge's trigger updates the row too.
_LOCK_PLAYBACKS = """
SELECT p.id FROM playbacks AS p
WHERE p.playback_id IN (SELECT d.playback_id FROM discrepancies AS d WHERE {healed})
ORDER BY p.id FOR UPDATE"""


def heal_missing_webhooks(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Charge every open missing_webhook of the run from the stream's first terminal event."""
    params = {"run_id": run_id, "kind": "missing_webhook", "rate_per_minute": tariff.rate_text,
              "currency": tariff.currency}
    durations = connection.execute(text(f"SELECT DISTINCT d.stream_ms, :rate_per_minute, :currency"
                                        f" FROM discrepancies AS d WHERE {_MISSING}"), params).all()
    _lock_playbacks(connection, _MISSING, params)
    charged = _write(connection, _CHARGES, params, durations, tariff, "charge", CHARGE_CAUSE)
    _mark_healed(connection, run_id, "missing_webhook", BillingRecord.kind == "charge")
    return charged


def heal_durations(connection: Connection, run_id: int, tariff: Tariff) -> int:
    """Adjust every corroborated open duration_mismatch of the run to the stream's duration."""
    params = {"run_id": run_id, "kind": "duration_mismatch"}
    _lock_playbacks(connection, _CORROBORATED, params)
    durations = connection.execute(text(_sql(
        f"SELECT DISTINCT d.stream_ms, c.rate_per_minute, c.currency FROM discrepancies AS d {_CORRECTED}"
        f" WHERE {_CORROBORATED}", connection)), params).all()
    adjusted = _write(connection, _ADJUSTMENTS, params, durations, tariff, "adjustment", DURATION_CAUSE)
    _mark_healed(connection, run_id, "duration_mismatch",
                 BillingRecord.kind == "adjustment", BillingRecord.cause == DURATION_CAUSE)
    return adjusted


def _lock_playbacks(connection: Connection, healed: str, params: dict) -> None:
    """PostgreSQL: lock the rows of the playbacks the discrepancies `healed` selects, in id order."""
    if connection.dialect.name == "postgresql":  # SQLite's writer already holds the database
        connection.execute(text(_sql(_LOCK_PLAYBACKS.format(healed=healed), connection)), params).all()


def _write(connection: Connection, source: str, params: dict, durations, tariff: Tariff, kind: str,
           cause: str) -> int:
    """Write the records `source` selects, joined to their ratings (`heal_ratings`); how many were new."""
    if not durations:
        return 0
    _store_ratings(connection, durations, tariff)
    head, tail = key_parts(kind, cause)
    params = params | {"key_head": head, "key_tail": tail, "cause": cause}
    return len(write_selected(connection, _sql(source, connection), params, actor=ACTOR))


def _store_ratings(connection: Connection, durations, tariff: Tariff) -> None:
    """The temporary table `heal_ratings`: each (duration_ms, rate_per_minute, currency) rated by
    `rating.py`, its seconds by the tariff and their amount at that rate and currency.

    A table with a key, not a parameter read in the statement: both databases would read
    such a parameter again for every discrepancy, at tens of thousands of durations.
    """
    rows = json.dumps([
        {"duration_ms": ms, "rate_per_minute": rate_text, "currency": currency, "billable_seconds": seconds,
         "amount_minor": amount_minor(Decimal(rate_text), seconds, currency)}
        for ms, rate_text, currency in durations
        for seconds in [billable_seconds(ms, tariff.increment_seconds, tariff.minimum_seconds)]
    ], separators=(",", ":"))
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS heal_ratings ({_RATED}) ON COMMIT DELETE ROWS")
        connection.exec_driver_sql("TRUNCATE heal_ratings")
        connection.execute(text(f"INSERT INTO heal_ratings SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
                                f" AS r({_RATED_COLUMNS})"), {"rows": rows})
        connection.exec_driver_sql("ANALYZE heal_ratings")
        return
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS heal_ratings ({_RATED})")
    connection.exec_driver_sql("DELETE FROM heal_ratings")
    columns = ", ".join(f"json_extract(value, '$.{name.split()[0]}')" for name in _RATED_COLUMNS.split(", "))
    connection.execute(text(f"INSERT INTO heal_ratings SELECT {columns} FROM json_each(:rows)"), {"rows": rows})


def _sql(statement: str, connection: Connection) -> str:
    return statement.replace("{true}", "true" if connection.dialect.name == "postgresql" else "1")


def _mark_healed(connection: Connection, run_id: int, kind: str, *record) -> None:
    """Set-based: the run's open discrepancies of `kind` that now have their record are healed."""
    connection.execute(
        update(Discrepancy)
        .where(Discrepancy.run_id == run_id, Discrepancy.kind == kind, Discrepancy.status == "open",
               BillingRecord.playback_id == Discrepancy.playback_id, *record)
        .values(status="healed", record_id=BillingRecord.id)
    )

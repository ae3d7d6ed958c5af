"""Whether a playback has been charged, kept on its row by the database, backfilled.

Reconciliation asks this of every playback in its window (an unbilled terminal, an
orphan charge); reading it from the row spares a join of every playback with the billing
records. A trigger on `billing_records` sets it in the transaction of every charge,
whichever code writes the charge (this deploy's or the previous one's), so it always
equals "a charge record exists for this playback". Records are never deleted, so it is
never unset.

On PostgreSQL the trigger runs once per statement, over the rows it inserted (a transition
table): a row-level trigger's PL/pgSQL call and UPDATE per charge cost batched ingest
10-15% of its throughput. By then every writer holds the playback rows it charges: ingest
writes or locks them first, healing locks them in id order beforehand, so
a heal and a late webhook charging the same playback queue up on its row, never deadlock.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BACKFILL = ("UPDATE playbacks SET charged = true WHERE playback_id IN"
            " (SELECT playback_id FROM billing_records WHERE kind = 'charge')")
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION billing_sync_mark_charged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE playbacks SET charged = true
  FROM (SELECT DISTINCT playback_id FROM inserted_records WHERE kind = 'charge') AS charges
  WHERE playbacks.playback_id = charges.playback_id AND NOT playbacks.charged;
  RETURN NULL;
END $$"""
_PG_TRIGGER = ("CREATE TRIGGER billing_records_mark_charged AFTER INSERT ON billing_records"
               " REFERENCING NEW TABLE AS inserted_records"
               " FOR EACH STATEMENT EXECUTE FUNCTION billing_sync_mark_charged()")
_SQLITE_TRIGGER = ("CREATE TRIGGER billing_records_mark_charged AFTER INSERT ON billing_records"
                   " WHEN NEW.kind = 'charge' BEGIN"
                   " UPDATE playbacks SET charged = 1 WHERE playback_id = NEW.playback_id AND NOT charged; END")


def upgrade() -> None:
    op.add_column("playbacks", sa.Column("charged", sa.Boolean(), nullable=False, server_default=sa.false()))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS billing_records_mark_charged ON billing_records")
        op.execute("DROP FUNCTION IF EXISTS billing_sync_mark_charged()")
    else:
        op.execute("DROP TRIGGER IF EXISTS billing_records_mark_charged")
    op.drop_column("playbacks", "charged")

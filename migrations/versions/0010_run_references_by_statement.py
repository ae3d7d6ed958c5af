"""A run's evidence and discrepancies name their run through triggers, not foreign keys.

A reconciliation run writes its evidence (one row per conversation analytics reported)
and its discrepancies in bulk: 100,000 and 71,000 rows for a million playbacks. A foreign
key checks each row on its own; on PostgreSQL that is a query per row, and for these two
tables it was 0.7 s of a 5.3 s run (`scripts/bench reconcile`). The reference is now
checked as the key checked it, but once per statement on PostgreSQL:

- an INSERT or UPDATE of `analytics_conversations` or `discrepancies` naming a run that
  does not exist fails (SQLSTATE 23503, foreign_key_violation, as the key's did): on
  PostgreSQL one anti-join over the statement's rows (a transition table), on SQLite a
  lookup per row as its key made;
- a run can no longer be deleted, nor its id changed, so no row can lose its run later
  (the service never did either: a run is the record of what reconciliation found and
  healed). That also spares the check the lock a key takes on the row it names.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHILDREN = ("analytics_conversations", "discrepancies")
KEY = "fk_{table}_run_id_reconciliation_runs"

_PG_CHECK = """
CREATE OR REPLACE FUNCTION billing_sync_check_run_ids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE missing bigint;
BEGIN
  SELECT n.run_id INTO missing FROM run_rows AS n
  WHERE NOT EXISTS (SELECT 1 FROM reconciliation_runs AS r WHERE r.id = n.run_id) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'insert or update on table "%" names reconciliation run %, which does not exist',
      TG_TABLE_NAME, missing USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$"""
_PG_KEEP_RUNS = """
CREATE OR REPLACE FUNCTION billing_sync_keep_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.id <> OLD.id THEN
    RAISE EXCEPTION 'reconciliation runs are kept: % of run % refused', TG_OP, OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in CHILDREN:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(KEY.format(table=table)), type_="foreignkey")
    if postgres:
        op.execute(_PG_CHECK)
        op.execute(_PG_KEEP_RUNS)
        for table in CHILDREN:
            for event in ("INSERT", "UPDATE"):
                op.execute(f"CREATE TRIGGER {table}_run_ids_{event.lower()} AFTER {event} ON {table}"
                           " REFERENCING NEW TABLE AS run_rows FOR EACH STATEMENT"
                           " EXECUTE FUNCTION billing_sync_check_run_ids()")
        op.execute("CREATE TRIGGER reconciliation_runs_kept BEFORE UPDATE OR DELETE ON reconciliation_runs"
                   " FOR EACH ROW EXECUTE FUNCTION billing_sync_keep_runs()")
        return
    for table in CHILDREN:
        for event in ("INSERT", "UPDATE OF run_id"):
            op.execute(f"CREATE TRIGGER {table}_run_id_{event.split()[0].lower()} BEFORE {event} ON {table}"
                       " WHEN NOT EXISTS (SELECT 1 FROM reconciliation_runs WHERE id = NEW.run_id)"
                       f" BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: {table} names a"
                       " reconciliation run that does not exist'); END")
    for event, when in (("DELETE", ""), ("UPDATE OF id", " WHEN NEW.id <> OLD.id")):
        op.execute(f"CREATE TRIGGER reconciliation_runs_kept_{event.split()[0].lower()} BEFORE {event}"
                   f" ON reconciliation_runs{when}"
                   f" BEGIN SELECT RAISE(ABORT, 'reconciliation runs are kept: {event.split()[0]} refused'); END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS reconciliation_runs_kept ON reconciliation_runs")
        for table in CHILDREN:
            for event in ("insert", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_run_ids_{event} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS billing_sync_check_run_ids()")
        op.execute("DROP FUNCTION IF EXISTS billing_sync_keep_runs()")
    else:
        for name in ("reconciliation_runs_kept_delete", "reconciliation_runs_kept_update",
                     *(f"{table}_run_id_{event}" for table in CHILDREN for event in ("insert", "update"))):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in CHILDREN:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(op.f(KEY.format(table=table)), "reconciliation_runs", ["run_id"], ["id"])

"""PostgreSQL checks a run's evidence and discrepancies against their run once per statement.

A reconciliation run writes its evidence (one row per conversation analytics reported)
and its discrepancies in bulk: 100,000 and 71,000 rows for a million playbacks. A foreign
key checks each row on its own, which on PostgreSQL is a query per row: for these two
tables 0.7 s of a 5.3 s run (`scripts/bench reconcile`). On PostgreSQL the two keys
(`run_id` → `reconciliation_runs.id`) become statement triggers that check the same thing
over all of a statement's rows at once (one anti-join over a transition table): an INSERT
or UPDATE naming a run that does not exist fails with SQLSTATE 23503,
foreign_key_violation, as the key's did. The models still declare the keys: that is the
reference, whichever way the database enforces it (`KEYS_AS_TRIGGERS`).

SQLite keeps its keys: it checks them natively, for less than a trigger costs there.

Runs are kept, on both: deleting a run or changing its id is refused. So no row can lose
its run later, which spares the statement check the lock a key takes on the row it names;
the service never did either (a run is the record of what reconciliation found and healed).

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
# The keys PostgreSQL enforces by these triggers instead (`tests/test_migrations.py` knows).
KEYS_AS_TRIGGERS = tuple(KEY.format(table=table) for table in CHILDREN)

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
_SQLITE_KEEP_RUNS = {
    "delete": "BEFORE DELETE ON reconciliation_runs",
    "update": "BEFORE UPDATE OF id ON reconciliation_runs WHEN NEW.id <> OLD.id",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for verb, when in _SQLITE_KEEP_RUNS.items():
            op.execute(f"CREATE TRIGGER reconciliation_runs_kept_{verb} {when}"
                       f" BEGIN SELECT RAISE(ABORT, 'reconciliation runs are kept: {verb.upper()} refused'); END")
        return
    op.execute(_PG_KEEP_RUNS)
    op.execute("CREATE TRIGGER reconciliation_runs_kept BEFORE UPDATE OR DELETE ON reconciliation_runs"
               " FOR EACH ROW EXECUTE FUNCTION billing_sync_keep_runs()")
    op.execute(_PG_CHECK)
    for table in CHILDREN:
        op.drop_constraint(op.f(KEY.format(table=table)), table, type_="foreignkey")
        for event in ("INSERT", "UPDATE"):
            op.execute(f"CREATE TRIGGER {table}_run_ids_{event.lower()} AFTER {event} ON {table}"
                       " REFERENCING NEW TABLE AS run_rows FOR EACH STATEMENT"
                       " EXECUTE FUNCTION billing_sync_check_run_ids()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for verb in _SQLITE_KEEP_RUNS:
            op.execute(f"DROP TRIGGER IF EXISTS reconciliation_runs_kept_{verb}")
        return
    for table in CHILDREN:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_run_ids_{event} ON {table}")
        op.create_foreign_key(op.f(KEY.format(table=table)), table, "reconciliation_runs", ["run_id"], ["id"])
    op.execute("DROP FUNCTION IF EXISTS billing_sync_check_run_ids()")
    op.execute("DROP TRIGGER IF EXISTS reconciliation_runs_kept ON reconciliation_runs")
    op.execute("DROP FUNCTION IF EXISTS billing_sync_keep_runs()")

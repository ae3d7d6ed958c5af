"""Room on each page of `playbacks` for a row's next version (PostgreSQL): fillfactor 90.

A playback is written once and updated after: ingest folds later events into it, and a
charge's trigger (0008) sets `charged`. An update that changes no indexed column can stay
on the row's page without touching the table's five indexes (a heap-only tuple), but only
where the page has room; at the default fillfactor, 100, inserts and CLUSTER leave none.
Marking 10,000 playbacks charged in a reconciliation heal cost 0.23 s with every index
rewritten; with the room, a heal of 20,000 discrepancies over a million playbacks took
about 0.3 s less in all (`scripts/bench reconcile`).

It applies to pages written from now on (new rows, and the whole table after a CLUSTER or
VACUUM FULL); the change itself takes no lock that blocks reads or writes. SQLite has no
such setting.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FILLFACTOR = 90


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE playbacks SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE playbacks RESET (fillfactor)")

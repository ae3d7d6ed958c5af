"""Each playback's first terminal event per witness (webhook, stream) on its row, backfilled.

Reconciliation compares these instead of seeking the terminal-events index per playback
and source; ingest keeps them from now on, in the writes it makes to the playback anyway.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WITNESSES = ("webhook", "stream")
FIELDS = ("id", "state", "ms", "at")

# One statement for both databases (row values: PostgreSQL, SQLite ≥ 3.15): per playback,
# each witness's lowest-id terminal event, a seek in ix_playback_events_terminal.
_FIRST = """(SELECT e.id, e.state, e.duration_ms, e.occurred_at FROM playback_events e
             WHERE e.source = '{source}' AND e.playback_id = playbacks.playback_id
               AND e.state IN ('completed', 'failed', 'stopped')
             ORDER BY e.id LIMIT 1)"""
BACKFILL = "UPDATE playbacks SET " + ", ".join(
    f"({', '.join(f'{source}_terminal_{field}' for field in FIELDS)}) = {_FIRST.format(source=source)}"
    for source in WITNESSES)


def upgrade() -> None:
    for source in WITNESSES:
        op.add_column("playbacks", sa.Column(f"{source}_terminal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                             nullable=True))
        op.add_column("playbacks", sa.Column(f"{source}_terminal_state", sa.String(16), nullable=True))
        op.add_column("playbacks", sa.Column(f"{source}_terminal_ms", sa.Integer(), nullable=True))
        op.add_column("playbacks", sa.Column(f"{source}_terminal_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    for source in WITNESSES:
        for field in FIELDS:
            op.drop_column("playbacks", f"{source}_terminal_{field}")

"""Terminal events index: reconciliation reads each playback's first terminal event per source from it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NAME = "ix_playback_events_terminal"
TERMINAL = sa.text("state IN ('completed', 'failed', 'stopped')")


def upgrade() -> None:
    op.create_index(NAME, "playback_events", ["source", "playback_id", "id", "state", "duration_ms", "occurred_at"],
                    postgresql_where=TERMINAL, sqlite_where=TERMINAL)


def downgrade() -> None:
    op.drop_index(NAME, table_name="playback_events")

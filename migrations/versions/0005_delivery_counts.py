"""Delivery attempts counted by outcome and answer, for /metrics from any host.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_counts",
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("outcome", "answer", name=op.f("pk_delivery_counts")),
    )


def downgrade() -> None:
    op.drop_table("delivery_counts")

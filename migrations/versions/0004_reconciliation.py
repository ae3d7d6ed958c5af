"""Reconciliation: runs, the analytics evidence each fetched, the discrepancies each found.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("since", UTC, nullable=False),
        sa.Column("until", UTC, nullable=False),
        sa.Column("as_of", UTC, nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.Column("analytics_lag_s", sa.Integer(), nullable=False),
        sa.Column("tolerance_ms", sa.Integer(), nullable=False),
        sa.Column("tolerance_basis_points", sa.Integer(), nullable=False),
        sa.Column("heal_missing_webhook", sa.Boolean(), nullable=False),
        sa.Column("heal_duration", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("analytics_conversations", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_table(
        "analytics_conversations",
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("conversation_start", UTC, nullable=True),
        sa.Column("playbacks", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("played_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"],
                                name=op.f("fk_analytics_conversations_run_id_reconciliation_runs")),
        sa.PrimaryKeyConstraint("run_id", "conversation_id", name=op.f("pk_analytics_conversations")),
    )
    op.create_table(
        "discrepancies",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("playback_id", sa.String(64), nullable=True),
        sa.Column("webhook_state", sa.String(16), nullable=True),
        sa.Column("stream_state", sa.String(16), nullable=True),
        sa.Column("webhook_ms", sa.BigInteger(), nullable=True),
        sa.Column("stream_ms", sa.BigInteger(), nullable=True),
        sa.Column("ledger_count", sa.Integer(), nullable=True),
        sa.Column("analytics_count", sa.Integer(), nullable=True),
        sa.Column("ledger_ms", sa.BigInteger(), nullable=True),
        sa.Column("analytics_ms", sa.BigInteger(), nullable=True),
        sa.Column("corroborated", sa.Boolean(), nullable=True),
        sa.Column("record_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"],
                                name=op.f("fk_discrepancies_run_id_reconciliation_runs")),
        sa.ForeignKeyConstraint(["record_id"], ["billing_records.id"],
                                name=op.f("fk_discrepancies_record_id_billing_records")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
    )
    op.create_index(op.f("ix_discrepancies_run_id_kind_status"), "discrepancies", ["run_id", "kind", "status"])
    op.create_index(op.f("ix_discrepancies_playback_id"), "discrepancies", ["playback_id"])
    op.create_index(op.f("ix_discrepancies_conversation_id"), "discrepancies", ["conversation_id"])


def downgrade() -> None:
    for table in ("discrepancies", "analytics_conversations", "reconciliation_runs"):
        op.drop_table(table)

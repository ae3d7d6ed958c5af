"""Billing records (append-only) and the transactional outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billing_records",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("playback_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("cause", sa.String(128), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("billable_seconds", sa.BigInteger(), nullable=False),
        sa.Column("rate_per_minute", sa.String(40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("provenance", sa.String(32), nullable=False),
        sa.Column("corrects", BIG_ID, nullable=True),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.CheckConstraint("kind IN ('charge', 'adjustment', 'reversal')", name=op.f("ck_billing_records_kind")),
        sa.CheckConstraint(
            "(kind = 'charge') = (corrects IS NULL)", name=op.f("ck_billing_records_corrects_unless_charge")
        ),
        sa.ForeignKeyConstraint(
            ["corrects"], ["billing_records.id"], name=op.f("fk_billing_records_corrects_billing_records")
        ),
        sa.ForeignKeyConstraint(
            ["playback_id"], ["playbacks.playback_id"], name=op.f("fk_billing_records_playback_id_playbacks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_records")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_billing_records_idempotency_key")),
        sa.UniqueConstraint(
            "playback_id", "kind", "cause", name=op.f("uq_billing_records_playback_id_kind_cause")
        ),
    )
    op.create_index(op.f("ix_billing_records_conversation_id"), "billing_records", ["conversation_id"])
    op.create_index(op.f("ix_billing_records_corrects"), "billing_records", ["corrects"])
    op.create_index(op.f("ix_billing_records_created_at"), "billing_records", ["created_at"])
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("record_id", BIG_ID, nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("leased_until", UTC, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(1024), nullable=True),
        sa.Column("delivered_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name=op.f("ck_outbox_status")),
        sa.ForeignKeyConstraint(["record_id"], ["billing_records.id"], name=op.f("fk_outbox_record_id_billing_records")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
        sa.UniqueConstraint("record_id", name=op.f("uq_outbox_record_id")),
    )
    op.create_index(op.f("ix_outbox_created_at"), "outbox", ["created_at"])
    op.create_index(op.f("ix_outbox_status_next_attempt_at"), "outbox", ["status", "next_attempt_at"])
    _forbid_changes("billing_records")


def downgrade() -> None:
    _allow_changes("billing_records")
    op.drop_table("outbox")
    op.drop_table("billing_records")


def _forbid_changes(table: str) -> None:
    """UPDATE and DELETE raise, whoever issues them (0001 created the PostgreSQL function)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION billing_sync_append_only()"
        )
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
        )


def _allow_changes(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        return
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")

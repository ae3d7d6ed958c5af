"""Playback control: switching rules and their firings, idempotency keys, stream listener state.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "switch_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dtmf", sa.String(1), nullable=True),
        sa.Column("keyword", sa.String(64), nullable=True),
        sa.Column("media_url", sa.String(2048), nullable=False),
        sa.Column("loop", sa.Boolean(), nullable=False),
        sa.Column("max_duration_s", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("cooldown_s", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("deleted_at", UTC, nullable=True),
        sa.Column("deleted_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("(dtmf IS NULL) <> (keyword IS NULL)", name=op.f("ck_switch_rules_one_trigger")),
        sa.CheckConstraint("cooldown_s >= 0", name=op.f("ck_switch_rules_cooldown_not_negative")),
        sa.ForeignKeyConstraint(["created_by"], ["api_keys.id"], name=op.f("fk_switch_rules_created_by_api_keys")),
        sa.ForeignKeyConstraint(["deleted_by"], ["api_keys.id"], name=op.f("fk_switch_rules_deleted_by_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switch_rules")),
    )
    op.create_index(op.f("ix_switch_rules_conversation_id"), "switch_rules", ["conversation_id"])
    op.create_table(
        "switch_rule_firings",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("fired_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["switch_rules.id"],
                                name=op.f("fk_switch_rule_firings_rule_id_switch_rules")),
        sa.PrimaryKeyConstraint("rule_id", "conversation_id", name=op.f("pk_switch_rule_firings")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("outcome", JSON, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("completed_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"],
                                name=op.f("fk_idempotency_keys_api_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("api_key_id", "key", name=op.f("uq_idempotency_keys_api_key_id_key")),
    )
    op.create_table(
        "stream_listeners",
        sa.Column("shard", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("channels_connected", sa.Integer(), nullable=False),
        sa.Column("topics", sa.Integer(), nullable=False),
        sa.Column("connects", sa.Integer(), nullable=False),
        sa.Column("disconnects", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.String(300), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_stream_listeners")),
    )


def downgrade() -> None:
    for table in ("stream_listeners", "idempotency_keys", "switch_rule_firings", "switch_rules"):
        op.drop_table(table)

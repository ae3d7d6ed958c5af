"""Migrations: one head, no drift from the models, append-only guards in place."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from billing_sync import schema
from billing_sync.models import Base


def test_one_head():
    assert len(ScriptDirectory.from_config(schema.alembic_config()).get_heads()) == 1


# Keys PostgreSQL enforces by statement triggers instead (migration 0010);
# `tests/reconcile/test_run_references.py` holds them to a key's behaviour on both databases.
KEYS_AS_TRIGGERS = ("fk_analytics_conversations_run_id_reconciliation_runs",
                    "fk_discrepancies_run_id_reconciliation_runs")


def test_models_and_migrations_agree(db):
    def declared_as_enforced(item, name, type_, reflected, compare_to) -> bool:
        return not (db.dialect == "postgresql" and type_ == "foreign_key_constraint" and name in KEYS_AS_TRIGGERS)

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "include_object": declared_as_enforced})
        assert compare_metadata(context, Base.metadata) == []


def test_database_is_at_head(db):
    assert schema.current_revision(db.engine) == schema.head_revision()


def test_upgrade_is_idempotent(db):
    schema.upgrade(db.engine)
    assert schema.current_revision(db.engine) == schema.head_revision()


def test_playbacks_leave_room_for_updates_on_postgresql(db):
    if db.dialect != "postgresql":
        pytest.skip("fillfactor is a PostgreSQL storage setting")
    with db.engine.connect() as connection:
        options = connection.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'playbacks'")).scalar()
    assert options == ["fillfactor=90"]


def test_playback_events_are_append_only(db, client, webhook_auth, events):
    client.post("/webhooks/genesys", json=events.event(), headers=webhook_auth)
    for statement in ("UPDATE playback_events SET state = 'failed'", "DELETE FROM playback_events"):
        with pytest.raises(DatabaseError, match="append-only"), db.write() as session:
            session.execute(text(statement))


def test_downgrade_and_upgrade_again(tmp_path):
    from billing_sync.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/roundtrip.db")
    schema.upgrade(engine)
    schema.downgrade(engine, "base")
    assert schema.current_revision(engine) is None
    schema.upgrade(engine)
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


def test_0008_backfills_charged_from_the_charges(tmp_path):
    from billing_sync.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/charged.db")
    schema.upgrade(engine, "0007")
    with engine.begin() as connection:
        for n in range(3):
            connection.execute(text(
                "INSERT INTO playbacks (playback_id, conversation_id, state, duration_ms, created_at, updated_at)"
                f" VALUES ('pb-{n}', 'conv', 'completed', 1000, '2026-11-24 00:00:00', '2026-11-24 00:00:00')"))
        for n, kind in ((0, "charge"), (1, "adjustment")):  # an adjustment alone is no charge
            connection.execute(text(
                "INSERT INTO billing_records (idempotency_key, kind, playback_id, conversation_id, cause,"
                " duration_ms, billable_seconds, rate_per_minute, amount_minor, currency, provenance, corrects,"
                f" created_at) VALUES ('{kind}:pb-{n}', '{kind}', 'pb-{n}', 'conv', 'terminal', 1000, 1, '0.60',"
                f" 1, 'EUR', 'webhook', {'NULL' if kind == 'charge' else 1}, '2026-11-24 00:00:00')"))
    schema.upgrade(engine)
    with engine.connect() as connection:
        charged = connection.execute(text("SELECT playback_id, charged FROM playbacks ORDER BY playback_id")).all()
    engine.dispose()
    assert [tuple(row) for row in charged] == [("pb-0", 1), ("pb-1", 0), ("pb-2", 0)]

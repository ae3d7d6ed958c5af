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


def test_models_and_migrations_agree(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_database_is_at_head(db):
    assert schema.current_revision(db.engine) == schema.head_revision()


def test_upgrade_is_idempotent(db):
    schema.upgrade(db.engine)
    assert schema.current_revision(db.engine) == schema.head_revision()


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

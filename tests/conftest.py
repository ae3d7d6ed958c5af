"""Fixtures in layers: database → settings → app → client → helpers.

Every test that takes `database_url` is a database test: it runs on SQLite, and on
PostgreSQL when scripts/test sets BILLING_SYNC_TEST_POSTGRES (an admin URL of a server
where it may create a scratch database). Each test gets an empty, migrated database.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from billing_sync import create_app
from billing_sync.config import Settings
from billing_sync.db import Database, make_engine
from billing_sync.keys import create_key
from billing_sync import schema

from .control_fixtures import (  # noqa: F401 - fixtures for every test directory
    admin_key, calls, control_app, control_client, control_settings, make_control_app, sandbox, served_app,
)

POSTGRES_ADMIN_URL = os.environ.get("BILLING_SYNC_TEST_POSTGRES")
WEBHOOK_USER = "genesys"
WEBHOOK_PASSWORD = "test-" + uuid.uuid4().hex
RATE = {"billing_rate_per_minute": Decimal("0.60"), "billing_currency": "EUR"}
RATE_ENV = {"BILLING_RATE_PER_MINUTE": "0.60", "BILLING_CURRENCY": "EUR"}


def make_settings(**values) -> Settings:
    """Settings for tests: the webhook credentials and a tariff, plus `values`."""
    return Settings(**{"webhook_username": WEBHOOK_USER, "webhook_password": WEBHOOK_PASSWORD, **RATE, **values})


TABLES = ("discrepancies", "analytics_conversations", "reconciliation_runs", "audit_log", "playback_events", "playbacks", "switch_rule_firings", "switch_rules",
          "idempotency_keys", "stream_listeners", "api_keys", "delivery_counts")


def pytest_report_header(config):
    return f"database: {'postgresql' if POSTGRES_ADMIN_URL else 'sqlite'}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """A database migrated once per session: a SQLite file to copy, or a PostgreSQL database."""
    if POSTGRES_ADMIN_URL:
        name = f"billing_sync_test_{os.getpid()}"
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        url = url.render_as_string(hide_password=False)
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        yield url
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()
    yield str(path)


@pytest.fixture
def database_url(migrated_template, tmp_path):
    """An empty, migrated database for this test alone."""
    if POSTGRES_ADMIN_URL:
        engine = create_engine(migrated_template)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            connection.execute(text(f"UPDATE audit_chain_head SET last_id = 0, last_hash = '{'0' * 64}'"))
        engine.dispose()
        return migrated_template
    path = tmp_path / "ledger.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(database_url):
    database = Database.from_url(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url):
    return make_settings(database_url=database_url)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["billing_sync"].genesys.close()
    app.extensions["billing_sync"].db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def webhook_auth():
    token = base64.b64encode(f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def api_key(app):
    """api_key(role) → headers carrying a new key of that role."""

    def make(role: str = "viewer") -> dict[str, str]:
        with app.extensions["billing_sync"].db.write() as session:
            _, key = create_key(session, role=role, name=f"test {role}", actor="test")
        return {"Authorization": f"Bearer {key}"}

    return make


class EventFactory:
    """Contract §6 playback events, and the three shapes of §7 that carry them."""

    def __init__(self) -> None:
        self.base = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

    def event(self, *, playback_id=None, conversation_id="conv-1", state="started", sequence=1,
              duration=0, event_id=None, media_url="https://media.example.com/welcome.wav", **extra):
        body = {
            "id": event_id or str(uuid.uuid4()),
            "eventType": "conversation:voice:playback",
            "conversationId": conversation_id,
            "playbackId": playback_id or str(uuid.uuid4()),
            "state": state,
            "duration": duration,
            "sequence": sequence,
            "mediaUrl": media_url,
            "timestamp": (self.base + timedelta(seconds=sequence)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        body.update(extra)
        return {k: v for k, v in body.items() if v is not None}

    def lifecycle(self, *, playback_id=None, conversation_id="conv-1", terminal="completed", duration=12000):
        """started → progress → terminal, three events of one playback."""
        playback_id = playback_id or str(uuid.uuid4())
        common = {"playback_id": playback_id, "conversation_id": conversation_id}
        return [
            self.event(state="started", sequence=1, duration=0, **common),
            self.event(state="progress", sequence=2, duration=duration // 2, **common),
            self.event(state=terminal, sequence=3, duration=duration, **common),
        ]

    @staticmethod
    def notification(body):
        return {
            "topicName": f"v2.conversations.{body['conversationId']}.playback",
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }

    @classmethod
    def eventbridge(cls, body, *, envelope_id=None):
        return {
            "version": "0",
            "id": envelope_id or str(uuid.uuid4()),
            "detail-type": f"v2.conversations.{body['conversationId']}.playback",
            "source": "aws.partner/genesys.com/cloud/org-1/billing",
            "account": "123456789012",
            "time": body["timestamp"][:19] + "Z",
            "region": "us-east-1",
            "resources": [],
            "detail": cls.notification(body),
        }


@pytest.fixture
def events():
    return EventFactory()

"""The billing-sync command: db upgrade, keys create, audit verify, configuration errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from billing_sync.cli import main
from billing_sync.keys import authenticate, hash_key
from billing_sync.models import ApiKey

from .conftest import RATE_ENV, WEBHOOK_PASSWORD, WEBHOOK_USER


@pytest.fixture
def run(database_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    env = {
        "DATABASE_URL": database_url,
        "BILLING_SYNC_WEBHOOK_USERNAME": WEBHOOK_USER,
        "BILLING_SYNC_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD,
        **RATE_ENV,
    }

    def invoke(*args, **extra_env):
        return CliRunner().invoke(main, list(args), env={**env, **extra_env}, catch_exceptions=False)

    return invoke


def test_keys_create_prints_the_key_alone_on_the_last_line(run, db):
    result = run("keys", "create", "--role", "finance", "--name", "ledger team")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("bsk_") and " " not in key
    with db.read() as session:
        row = session.scalars(select(ApiKey)).one()
        assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)
        assert (row.role, row.name) == ("finance", "ledger team")
        assert authenticate(session, key).role == "finance"


def test_keys_create_refuses_an_unknown_role(run):
    result = run("keys", "create", "--role", "root")
    assert result.exit_code == 2 and "root" in result.output


def test_db_upgrade_is_idempotent(run):
    first, second = run("db", "upgrade"), run("db", "upgrade")
    assert first.exit_code == second.exit_code == 0
    assert "database at" in second.output


def test_audit_verify(run):
    run("keys", "create", "--role", "admin")
    result = run("audit", "verify")
    assert result.exit_code == 0 and "verified: 1 entries" in result.output


def test_a_configuration_error_is_one_line(run):
    result = run("keys", "create", "--role", "admin", BILLING_SYNC_WEBHOOK_PASSWORD="")
    assert result.exit_code == 1
    assert "BILLING_SYNC_WEBHOOK_PASSWORD" in result.output and "Traceback" not in result.output

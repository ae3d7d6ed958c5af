"""`billing-sync reconcile --since --until [--grace-s N]` against the sandbox org's analytics."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, running_sandbox

from ..conftest import RATE_ENV, WEBHOOK_PASSWORD, WEBHOOK_USER
from .conftest import Ledger


@pytest.fixture
def invoke(database_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with running_sandbox() as sandbox:
        env = {"DATABASE_URL": database_url, "BILLING_SYNC_WEBHOOK_USERNAME": WEBHOOK_USER,
               "BILLING_SYNC_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD, "GENESYS_ENVIRONMENT": sandbox.base_url,
               "GENESYS_CLIENT_ID": TEST_CLIENT_ID, "GENESYS_CLIENT_SECRET": TEST_CLIENT_SECRET, **RATE_ENV}
        yield lambda *args, **extra: CliRunner().invoke(main, list(args), env={**env, **extra},
                                                        catch_exceptions=False)


def test_reconcile_heals_and_reports(invoke, db):
    ledger = Ledger(db)
    playback_id = ledger.playback("stream", duration_ms=6_000)
    window = ("--since", "2026-11-24T02:00:00", "--until", "2026-11-24T03:00:00")
    result = invoke("reconcile", *window, "--grace-s", "0")
    assert result.exit_code == 0, result.output
    assert "missing_webhook: 1 healed" in result.output and "1 charged, 0 adjusted" in result.output
    assert "s: analytics " in result.output and ", heal_charges " in result.output
    assert [(r.kind, r.provenance) for r in ledger.records(playback_id)] == [("charge", "stream")]
    again = invoke("reconcile", *window)
    assert again.exit_code == 0 and "0 charged" in again.output and len(ledger.records(playback_id)) == 1


@pytest.mark.parametrize(("since", "until", "message"), [
    ("2026-11-24T03:00:00", "2026-11-24T02:00:00", "since must be before until"),
    ("2025-11-20T00:00:00", "2026-11-25T00:00:00", "at most 366 days"),
])
def test_reconcile_refuses_a_backwards_or_too_long_window(invoke, since, until, message):
    result = invoke("reconcile", "--since", since, "--until", until)
    assert result.exit_code == 2 and message in result.output


def test_reconcile_needs_genesys_credentials(invoke):
    result = invoke("reconcile", "--since", "2026-11-24T02:00:00", "--until", "2026-11-24T03:00:00",
                    GENESYS_CLIENT_ID="")
    assert result.exit_code == 1 and "GENESYS_CLIENT_ID" in result.output

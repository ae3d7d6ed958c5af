"""`billing-sync genesys register-webhook` and `analytics` against the sandbox; one-line failures."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_sync import create_app
from billing_sync.genesys.cli import genesys_group, metrics_table
from billing_sync.genesys.models import ConversationPlaybacks, PlaybackMetrics
from billing_sync.models import AuditEntry
from billing_sync.sandbox.testing import TEST_CLIENT_SECRET, running_sandbox

from .sandbox_helpers import SandboxControl, client_for, sandbox_settings, wait_until

PUBLIC_URL = "https://billing.example.com"


def message_lines(output: str) -> list[str]:
    """What the command itself printed: the JSON log lines (httpx's request log) left out."""
    return [line for line in output.strip().splitlines() if not line.startswith("{")]


@pytest.fixture
def sandbox():
    with running_sandbox(seed=0, time_scale=50.0) as sandbox:
        yield sandbox


@pytest.fixture
def control(sandbox):
    with closing(SandboxControl(sandbox)) as control:
        yield control


@pytest.fixture
def invoke(sandbox, database_url):
    """invoke(*args, **settings changes) → the result of `billing-sync genesys ARGS` in an app."""
    apps = []

    def run(*args, **changes):
        settings = sandbox_settings(sandbox, **{"database_url": database_url, "public_url": PUBLIC_URL, **changes})
        app = create_app(settings)
        apps.append(app)
        return app.test_cli_runner().invoke(genesys_group, list(args))

    yield run
    for app in apps:
        app.extensions["billing_sync"].db.dispose()


def test_register_webhook_is_idempotent_prints_the_id_and_audits(invoke, sandbox, db):
    first, second = invoke("register-webhook"), invoke("register-webhook")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    webhook_id = first.stdout.strip().splitlines()[-1]
    assert second.stdout.strip().splitlines()[-1] == webhook_id
    assert "created webhook" in first.stderr and "updated webhook" in second.stderr
    with client_for(sandbox) as genesys:
        (webhook,) = genesys.list_webhooks()
    assert (webhook.id, webhook.name, webhook.address) == (webhook_id, "PlaybackBillingSync",
                                                           f"{PUBLIC_URL}/webhooks/genesys")
    assert webhook.auth_username == "genesys"
    with db.read() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions == ["webhook.registered", "webhook.registered"]
    assert "hook-password-1" not in first.output + second.output


@pytest.mark.parametrize(("change", "named"), [
    ({"public_url": None}, "BILLING_SYNC_PUBLIC_URL"),
    ({"genesys_client_id": None}, "GENESYS_CLIENT_ID"),
])
def test_a_missing_setting_is_one_line_naming_it(invoke, change, named):
    result = invoke("register-webhook", **change)
    assert result.exit_code == 1
    (line,) = message_lines(result.output)
    assert named in line and "Traceback" not in result.output


def test_a_genesys_failure_is_one_line_without_the_secret(invoke):
    result = invoke("analytics", "--since", "2026-11-01", "--until", "2026-11-02",
                    genesys_client_secret="wrong-" + TEST_CLIENT_SECRET)
    assert result.exit_code == 1
    (line,) = message_lines(result.output)
    assert "analytics query failed" in line and "invalid_client" in line and "401" in line
    assert TEST_CLIENT_SECRET not in result.output


def test_analytics_prints_a_row_per_conversation_and_totals_last(invoke, sandbox, control):
    with client_for(sandbox) as genesys:
        completed, stopped = control.place_call(), control.place_call()
        genesys.start_playback(completed, "https://media.example.com/a.wav?duration_ms=2000")
        genesys.start_playback(stopped, "https://media.example.com/b.wav?duration_ms=60000")
        genesys.stop_playback(stopped)
        wait_until(lambda: {p["state"] for p in control.truth()} == {"completed", "stopped"}, what="both to end")
    now = datetime.now(UTC)
    result = invoke("analytics", "--since", (now - timedelta(days=1)).isoformat(),
                    "--until", (now + timedelta(days=2)).isoformat())
    assert result.exit_code == 0, result.output
    header, *rows, total = message_lines(result.stdout)
    assert header.split()[:3] == ["conversation", "started", "playbacks"]
    assert {row.split()[0] for row in rows} == {completed, stopped}
    assert total.startswith("TOTAL") and total.split()[-1] == "50.0%"
    assert [row.split()[-1] for row in rows if row.startswith(completed)] == ["100.0%"]


def test_analytics_refuses_reversed_or_unreadable_dates(invoke):
    reversed_ = invoke("analytics", "--since", "2026-11-02", "--until", "2026-11-01")
    unreadable = invoke("analytics", "--since", "yesterday", "--until", "2026-11-01")
    assert reversed_.exit_code == unreadable.exit_code == 2
    assert "--until" in reversed_.output and "ISO 8601" in unreadable.output


def test_metrics_table_shows_dashes_for_no_rate():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    metrics = PlaybackMetrics(since=now, until=now, conversations=(
        ConversationPlaybacks("c-1", now, 2, 1, 3000), ConversationPlaybacks("c-2", now, 0, 0, 0)))
    lines = metrics_table(metrics)
    assert len(lines) == 3 and lines[1].split()[0] == "c-1" and lines[1].split()[-1] == "50.0%"
    assert lines[-1].split()[:3] == ["TOTAL", "1", "conversations"]

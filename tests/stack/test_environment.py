"""Sandbox or production: the rule, what `run` sets, and what it leaves to the operator."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from billing_sync.cli import main
from billing_sync.config import ConfigError, Settings
from billing_sync.stack.environment import (
    GENESYS_VARIABLES, addresses, configured_values, sandbox_overrides, uses_sandbox,
)

from ..conftest import RATE_ENV, WEBHOOK_PASSWORD, WEBHOOK_USER

BASE = {"BILLING_SYNC_WEBHOOK_USERNAME": WEBHOOK_USER, "BILLING_SYNC_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD, **RATE_ENV}


def test_the_sandbox_runs_only_while_no_genesys_variable_is_set():
    assert uses_sandbox(BASE)
    assert uses_sandbox({**BASE, "GENESYS_CLIENT_ID": "  "})
    for variable in GENESYS_VARIABLES:
        assert not uses_sandbox({**BASE, variable: "x"}), variable


def test_dot_env_counts_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("GENESYS_CLIENT_ID=from-file\nBILLING_CURRENCY=JPY\n")
    values = configured_values({"BILLING_CURRENCY": "EUR"}, env_file)
    assert values["GENESYS_CLIENT_ID"] == "from-file" and values["BILLING_CURRENCY"] == "EUR"
    assert not uses_sandbox(values)


def test_sandbox_mode_points_the_service_at_the_sandbox_and_validates():
    where = addresses("127.0.0.1:0", sandbox=True, sandbox_port=0)
    overrides = sandbox_overrides(BASE, where)
    assert overrides["GENESYS_ENVIRONMENT"] == where.sandbox_url
    assert overrides["BILLING_SYNC_PUBLIC_URL"] == where.api_url
    assert overrides["BILLING_WEBHOOK_URL"] == f"{where.sandbox_url}/sandbox/billing"
    settings = Settings.from_env({**BASE, **overrides}, env_file=None)
    assert settings.billing_webhook_secret[0].startswith("whsec_")
    assert settings.media_allowed_hosts == ("media.example.com",)
    assert where.api_url.rsplit(":", 1)[1] != "0" and where.bind.endswith(where.api_url.rsplit(":", 1)[1])
    # Fresh credentials every run: no default secret.
    assert sandbox_overrides(BASE, where)["GENESYS_CLIENT_SECRET"] != overrides["GENESYS_CLIENT_SECRET"]


def test_sandbox_mode_keeps_the_operators_billing_system_and_media_hosts():
    where = addresses("127.0.0.1:8123", sandbox=True, sandbox_port=8124)
    mine = {"BILLING_WEBHOOK_URL": "https://billing.example.com/hooks", "BILLING_WEBHOOK_SECRET": "whsec_x",
            "MEDIA_ALLOWED_HOSTS": "cdn.example.com"}
    overrides = sandbox_overrides({**BASE, **mine}, where)
    assert not set(mine) & set(overrides)
    assert (where.api_url, where.sandbox_url) == ("http://127.0.0.1:8123", "http://127.0.0.1:8124")


def test_a_wildcard_bind_is_reached_on_loopback():
    where = addresses("0.0.0.0:8125", sandbox=False, sandbox_port=0)
    assert (where.bind, where.api_url, where.sandbox_url) == ("0.0.0.0:8125", "http://127.0.0.1:8125", None)


def test_the_bind_flag_wins_over_billing_sync_bind():
    values = {"BILLING_SYNC_BIND": "127.0.0.1:8126"}
    assert addresses(None, sandbox=False, sandbox_port=0, values=values).bind == "127.0.0.1:8126"
    assert addresses("127.0.0.1:8127", sandbox=False, sandbox_port=0, values=values).bind == "127.0.0.1:8127"


@pytest.mark.parametrize("bind", ["8000", "localhost:", ":8000", "host:99999"])
def test_a_bad_bind_names_the_flag(bind):
    with pytest.raises(ConfigError, match="--bind"):
        addresses(bind, sandbox=False, sandbox_port=0)


@pytest.mark.parametrize(("missing", "named"), [
    ("GENESYS_CLIENT_SECRET", "GENESYS_CLIENT_SECRET"),
    ("BILLING_SYNC_PUBLIC_URL", "BILLING_SYNC_PUBLIC_URL"),
    ("BILLING_WEBHOOK_URL", "BILLING_WEBHOOK_URL"),
    ("BILLING_WEBHOOK_SECRET", "BILLING_WEBHOOK_SECRET"),
])
def test_production_mode_without_a_setting_is_one_line_naming_it(tmp_path, monkeypatch, missing, named):
    monkeypatch.chdir(tmp_path)
    production = {**BASE, "GENESYS_ENVIRONMENT": "mypurecloud.ie", "GENESYS_CLIENT_ID": "client",
                  "GENESYS_CLIENT_SECRET": "secret", "BILLING_SYNC_PUBLIC_URL": "https://billing-sync.example.com",
                  "BILLING_WEBHOOK_URL": "https://billing.example.com/hooks",
                  "BILLING_WEBHOOK_SECRET": "whsec_" + "A" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    for variable in (missing, "BILLING_SYNC_BIND"):
        monkeypatch.delenv(variable, raising=False)
    production.pop(missing)
    result = CliRunner().invoke(main, ["run", "--instance-dir", str(tmp_path / "instance")], env=production)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert named in result.output and "configuration:" in result.output
    assert not (tmp_path / "instance").exists()

"""Settings: required values, malformed values, the optional .env file."""

from __future__ import annotations

import pytest

from billing_sync.config import DEFAULT_DATABASE_URL, ConfigError, Settings

BASE = {"BILLING_SYNC_WEBHOOK_USERNAME": "genesys", "BILLING_SYNC_WEBHOOK_PASSWORD": "s3cret",
        "BILLING_RATE_PER_MINUTE": "0.60", "BILLING_CURRENCY": "EUR"}


def load(**env):
    return Settings.from_env({**BASE, **env}, env_file=None)


def test_defaults():
    settings = load()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.log_level == "INFO"
    assert settings.genesys_hosts.api_base == "https://api.mypurecloud.com"


@pytest.mark.parametrize("missing", ["BILLING_SYNC_WEBHOOK_USERNAME", "BILLING_SYNC_WEBHOOK_PASSWORD",
                                     "BILLING_RATE_PER_MINUTE", "BILLING_CURRENCY"])
def test_a_missing_secret_is_one_line_naming_it(missing):
    env = dict(BASE)
    del env[missing]
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env, env_file=None)
    assert str(error.value).startswith(f"{missing} is required")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("var", "value"), [
    ("DATABASE_URL", "mysql://root@localhost/x"),
    ("LOG_LEVEL", "LOUD"),
    ("GENESYS_ENVIRONMENT", "mars-north-1"),
    ("GENESYS_PLAYBACK_BASE_URL", "not a url"),
    ("BILLING_SYNC_PUBLIC_URL", "ftp://example.com"),
    ("BILLING_SYNC_WEBHOOK_PASSWORD", "   "),
])
def test_a_malformed_value_names_the_variable(var, value):
    with pytest.raises(ConfigError, match=var):
        load(**{var: value})


@pytest.mark.parametrize(("given", "expected"), [
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_database_urls_are_normalised(given, expected):
    assert load(DATABASE_URL=given).database_url == expected


@pytest.mark.parametrize(("value", "api", "login"), [
    ("mypurecloud.ie", "https://api.mypurecloud.ie", "https://login.mypurecloud.ie"),
    ("eu-west-1", "https://api.mypurecloud.ie", "https://login.mypurecloud.ie"),
    ("us_west_2", "https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud"),
    ("http://127.0.0.1:8090", "http://127.0.0.1:8090", "http://127.0.0.1:8090"),
    ("https://api.example.test", "https://api.example.test", "https://login.example.test"),
])
def test_genesys_environment_forms(value, api, login):
    hosts = load(GENESYS_ENVIRONMENT=value).genesys_hosts
    assert (hosts.api_base, hosts.login_base) == (api, login)


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BILLING_SYNC_WEBHOOK_USERNAME=from-file\nBILLING_SYNC_WEBHOOK_PASSWORD=file-pw\nLOG_LEVEL=debug\n")
    settings = Settings.from_env({"LOG_LEVEL": "WARNING", **{k: BASE[k] for k in ("BILLING_RATE_PER_MINUTE", "BILLING_CURRENCY")}}, env_file=env_file)
    assert (settings.webhook_username, settings.log_level) == ("from-file", "WARNING")


def test_require_names_the_missing_variable():
    with pytest.raises(ConfigError, match="GENESYS_CLIENT_SECRET"):
        load(GENESYS_CLIENT_ID="abc").require("genesys_client_id", "genesys_client_secret")

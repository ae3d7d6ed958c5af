"""Rating: billable seconds, amounts in minor units, currencies' exponents, tariff settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_sync.config import ConfigError, Settings
from billing_sync.ledger.rating import Tariff, amount_minor, billable_seconds

BASE = {"BILLING_SYNC_WEBHOOK_USERNAME": "genesys", "BILLING_SYNC_WEBHOOK_PASSWORD": "s3cret",
        "BILLING_RATE_PER_MINUTE": "0.60", "BILLING_CURRENCY": "EUR"}


@pytest.mark.parametrize(("duration_ms", "increment", "minimum", "expected"), [
    (0, 1, 0, 0),            # nothing played, nothing billed ...
    (0, 6, 30, 0),           # ... not even the minimum
    (1, 1, 0, 1),            # a millisecond is a started second
    (1000, 1, 0, 1),
    (1001, 1, 0, 2),
    (12_000, 1, 0, 12),
    (12_000, 6, 0, 12),
    (12_001, 6, 0, 18),      # 13 s → the next 6 s increment
    (59_999, 60, 0, 60),
    (60_001, 60, 0, 120),
    (5_000, 1, 30, 30),      # under the minimum: the minimum
    (31_000, 1, 30, 31),     # over it: as played
    (5_000, 6, 30, 30),
    (29_500, 6, 20, 30),
])
def test_billable_seconds(duration_ms, increment, minimum, expected):
    assert billable_seconds(duration_ms, increment, minimum) == expected


@pytest.mark.parametrize(("rate", "seconds", "currency", "expected"), [
    ("0.60", 12, "USD", 12),        # 0.12 USD
    ("0.25", 12, "EUR", 5),         # 0.05 EUR
    ("0.01", 30, "USD", 0),         # 0.5 cent → half-even → 0
    ("0.01", 90, "USD", 2),         # 1.5 cents → 2
    ("0.03", 50, "USD", 2),         # 2.5 cents → 2 (even)
    ("0.03", 70, "USD", 4),         # 3.5 cents → 4 (even)
    ("1", 30, "JPY", 0),            # 0.5 yen → 0: JPY has no minor unit
    ("1", 90, "JPY", 2),            # 1.5 yen → 2
    ("7", 61, "KRW", 7),            # 7.116… won → 7
    ("0.1", 1, "KWD", 2),           # 1.666… fils → 2: KWD has 3 decimals
    ("0.006", 30, "BHD", 3),        # exactly 3 fils
    ("0.009", 10, "OMR", 2),        # 1.5 baisa → 2
    ("0.003", 10, "TND", 0),        # 0.5 millime → 0
    ("0.123456789012", 3600, "USD", 741),
    ("1000000", 31_536_000, "USD", 52_560_000_000_000),  # a year at a million a minute: no float drift
    ("0.60", -12, "USD", -12),      # reversals rate negative seconds symmetrically
])
def test_amount_in_minor_units_rounded_half_even(rate, seconds, currency, expected):
    assert amount_minor(Decimal(rate), seconds, currency) == expected


def test_a_tariff_rates_duration_and_keeps_its_exact_rate():
    tariff = Tariff(Decimal("0.0150"), "EUR", increment_seconds=6, minimum_seconds=12)
    rating = tariff.rate(7_001)
    assert (rating.billable_seconds, rating.amount_minor) == (12, 0)
    assert tariff.rate(600_000).amount_minor == 15
    assert tariff.rate_text == "0.0150"
    assert Tariff(Decimal("1E+1"), "USD").rate_text == "10"


def test_tariff_from_settings():
    settings = Settings.from_env({**BASE, "BILLING_RATE_PER_MINUTE": "0.0150", "BILLING_CURRENCY": "kwd",
                                  "BILLING_INCREMENT_SECONDS": "6", "BILLING_MINIMUM_SECONDS": "30"}, env_file=None)
    assert Tariff.from_settings(settings) == Tariff(Decimal("0.0150"), "KWD", 6, 30)


def test_billing_defaults():
    settings = Settings.from_env(BASE, env_file=None)
    assert settings.billing_retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert (settings.billing_increment_seconds, settings.billing_minimum_seconds) == (1, 0)
    assert settings.billing_webhook_secret is None and settings.billing_webhook_url is None


def test_secrets_and_schedule_are_parsed():
    first = "whsec_" + "A" * 32
    settings = Settings.from_env({**BASE, "BILLING_WEBHOOK_SECRET": f"{first}, whsec_{'B' * 40}",
                                  "BILLING_RETRY_SCHEDULE": "0, 0.5,2"}, env_file=None)
    assert settings.billing_webhook_secret == (first, "whsec_" + "B" * 40)
    assert settings.billing_retry_schedule == (0.0, 0.5, 2.0)


@pytest.mark.parametrize(("var", "value"), [
    ("BILLING_RATE_PER_MINUTE", "cheap"),
    ("BILLING_RATE_PER_MINUTE", "-1"),
    ("BILLING_RATE_PER_MINUTE", "NaN"),
    ("BILLING_RATE_PER_MINUTE", "0.0000000000001"),
    ("BILLING_CURRENCY", "EURO"),
    ("BILLING_CURRENCY", "XAU"),
    ("BILLING_CURRENCY", "€UR"),
    ("BILLING_INCREMENT_SECONDS", "0"),
    ("BILLING_MINIMUM_SECONDS", "-5"),
    ("BILLING_RETRY_SCHEDULE", "5,10"),
    ("BILLING_RETRY_SCHEDULE", "0,soon"),
    ("BILLING_RETRY_SCHEDULE", "0,-1"),
    ("BILLING_WEBHOOK_SECRET", "not-a-whsec"),
    ("BILLING_WEBHOOK_SECRET", "whsec_***"),
    ("BILLING_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
    ("BILLING_WEBHOOK_SECRET", " , "),
    ("BILLING_WEBHOOK_URL", "billing.example.com"),
])
def test_a_malformed_billing_value_is_one_line_naming_it(var, value):
    env = {**BASE, "BILLING_RATE_PER_MINUTE": "0.5", "BILLING_CURRENCY": "USD", var: value}
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env, env_file=None)
    assert str(error.value).startswith(var) and "\n" not in str(error.value)


@pytest.mark.parametrize("missing", ["BILLING_RATE_PER_MINUTE", "BILLING_CURRENCY"])
def test_rate_and_currency_are_required(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} is required"):
        Settings.from_env(env, env_file=None)

"""Rating: how long a playback is billed for and what it costs, in integer minor units.

Pure functions over `Decimal`, no floats anywhere: billable seconds are the played
milliseconds rounded up to whole seconds, then up to the tariff's increment, then raised
to its minimum (a playback that played nothing is billed nothing); the amount is
rate × seconds / 60 in the currency's minor unit, rounded half-even.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from ..config import Settings, currency_exponent

# Enough digits that no product of a 12-place rate and a year of seconds is ever rounded early.
_EXACT = Context(prec=60)


@dataclass(frozen=True, slots=True)
class Tariff:
    """The price of playback: a rate per minute in a currency, billed in increments."""

    rate_per_minute: Decimal
    currency: str
    increment_seconds: int = 1
    minimum_seconds: int = 0

    def __post_init__(self) -> None:
        if self.rate_per_minute < 0 or not self.rate_per_minute.is_finite():
            raise ValueError(f"rate must be a non-negative decimal, got {self.rate_per_minute}")
        if self.increment_seconds < 1 or self.minimum_seconds < 0:
            raise ValueError("increment must be at least 1 and minimum at least 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> Tariff:
        """The configured tariff (rate and currency are required settings)."""
        return cls(
            rate_per_minute=settings.billing_rate_per_minute,
            currency=settings.billing_currency,
            increment_seconds=settings.billing_increment_seconds,
            minimum_seconds=settings.billing_minimum_seconds,
        )

    @property
    def rate_text(self) -> str:
        """The rate as stored on each record: the exact decimal, never in exponent form."""
        return format(self.rate_per_minute, "f")

    def rate(self, duration_ms: int) -> Rating:
        seconds = billable_seconds(duration_ms, self.increment_seconds, self.minimum_seconds)
        return Rating(seconds, amount_minor(self.rate_per_minute, seconds, self.currency))


@dataclass(frozen=True, slots=True)
class Rating:
    billable_seconds: int
    amount_minor: int


def billable_seconds(duration_ms: int, increment_seconds: int = 1, minimum_seconds: int = 0) -> int:
    """Whole seconds billed for `duration_ms` played: rounded up to the increment, at least the minimum."""
    if duration_ms < 0:
        raise ValueError(f"duration cannot be negative, got {duration_ms}")
    if duration_ms == 0:
        return 0
    seconds = -(-duration_ms // 1000)
    increments = -(-seconds // increment_seconds)
    return max(increments * increment_seconds, minimum_seconds)


def amount_minor(rate_per_minute: Decimal, seconds: int, currency: str) -> int:
    """rate × seconds / 60 in `currency`'s minor units, rounded half-even. Negative seconds allowed."""
    scale = Decimal(10) ** currency_exponent(currency)
    exact = _EXACT.divide(_EXACT.multiply(_EXACT.multiply(rate_per_minute, Decimal(seconds)), scale), Decimal(60))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_EXACT))

"""Rate-limit tiers and configuration validation."""

from __future__ import annotations

import math

import pytest

from embed2prompt import ConfigurationError, RateLimitConfig, RateLimitTier, UnknownTierError

# The specification's table, verbatim.
SEED_TABLE = {
    "tier_1": (3, 200, 3),
    "tier_2": (3_500, 10_000, 50),
    "tier_3": (5_000, 10_000, 100),
    "tier_4": (10_000, 30_000, 200),
    "tier_5": (30_000, 100_000, 500),
}


@pytest.mark.parametrize(("name", "row"), SEED_TABLE.items())
def test_tiers_hold_the_seed_table(name: str, row: tuple[int, int, int]) -> None:
    limits = RateLimitTier(name).config
    assert (limits.requests_per_minute, limits.requests_per_day, limits.concurrent_requests) == row
    assert limits.tokens_per_minute > 0
    assert limits.tokens_per_day >= limits.tokens_per_minute


def test_tier_names_are_forgiving_about_case_and_dashes() -> None:
    assert RateLimitTier("TIER_3") is RateLimitTier.TIER_3
    assert RateLimitTier("tier-4") is RateLimitTier.TIER_4


@pytest.mark.parametrize("bad", ["tier_9", "gold", 2, None])
def test_unknown_tier_lists_the_valid_ones(bad: object) -> None:
    with pytest.raises(UnknownTierError, match="tier_1, tier_2, tier_3, tier_4, tier_5"):
        RateLimitTier(bad)


def test_default_bursts_are_one_second_of_the_minute_limit() -> None:
    limits = RateLimitTier.TIER_2.config
    assert limits.effective_request_burst == pytest.approx(3_500 / 60)
    assert RateLimitTier.TIER_1.config.effective_request_burst == 1.0  # never below one call


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("requests_per_minute", 0),
        ("requests_per_day", -5),
        ("tokens_per_minute", math.inf),
        ("tokens_per_day", math.nan),
        ("concurrent_requests", 2.5),
        ("concurrent_requests", True),
        ("requests_per_minute", "100"),
        ("request_burst", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    values: dict[str, object] = {
        "requests_per_minute": 100,
        "requests_per_day": 1000,
        "tokens_per_minute": 10_000,
        "tokens_per_day": 100_000,
        "concurrent_requests": 10,
    }
    values[field] = value
    with pytest.raises(ConfigurationError, match=field):
        RateLimitConfig(**values)  # type: ignore[arg-type]

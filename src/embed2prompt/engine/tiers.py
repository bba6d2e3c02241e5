"""Rate-limit configuration: the numbers a limiter enforces, and OpenAI's usage tiers.

Requests per minute, requests per day and concurrent requests per tier are the
specification's table, exactly. The specification gives no token limits, so the token
columns are OpenAI's published figures for ``gpt-4o-mini`` at the same tier: tokens per
minute, and the batch-queue limit as the daily token budget. Override them with a custom
:class:`RateLimitConfig` when your model or organisation has other limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

from embed2prompt.errors import ConfigurationError, UnknownTierError


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The limits one organisation's calls must stay within, all at once.

    ``request_burst`` and ``token_burst`` bound how far ahead of the smooth pace calls may
    start: in any interval of T seconds at most ``requests_per_minute * T / 60 +
    request_burst`` calls start (likewise for tokens). ``None`` means one second's worth
    of the per-minute limit, at least 1 — small enough that servers which enforce limits
    over sub-minute periods never see a burst.
    """

    requests_per_minute: float
    requests_per_day: float
    tokens_per_minute: float
    tokens_per_day: float
    concurrent_requests: int
    request_burst: float | None = None
    token_burst: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name.endswith("_burst"):
                continue
            _require_positive_finite(field.name, value)
        if self.concurrent_requests != int(self.concurrent_requests):
            raise ConfigurationError(
                f"concurrent_requests must be a whole number, got {self.concurrent_requests!r}"
            )

    @property
    def effective_request_burst(self) -> float:
        if self.request_burst is not None:
            return self.request_burst
        return max(1.0, self.requests_per_minute / 60.0)

    @property
    def effective_token_burst(self) -> float:
        if self.token_burst is not None:
            return self.token_burst
        return max(1.0, self.tokens_per_minute / 60.0)


def _require_positive_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive finite number, got {value!r}")


class RateLimitTier(StrEnum):
    """OpenAI usage tiers. ``RateLimitTier("tier_2").config`` gives its limits."""

    TIER_1 = "tier_1"
    TIER_2 = "tier_2"
    TIER_3 = "tier_3"
    TIER_4 = "tier_4"
    TIER_5 = "tier_5"

    @property
    def config(self) -> RateLimitConfig:
        return _TIER_LIMITS[self]

    @classmethod
    def _missing_(cls, value: object) -> RateLimitTier:
        if isinstance(value, str):
            normalised = value.strip().lower().replace("-", "_")
            for tier in cls:
                if tier.value == normalised:
                    return tier
        valid = ", ".join(tier.value for tier in cls)
        raise UnknownTierError(f"unknown rate limit tier {value!r}; expected one of: {valid}")


_TIER_LIMITS: dict[RateLimitTier, RateLimitConfig] = {
    RateLimitTier.TIER_1: RateLimitConfig(
        requests_per_minute=3,
        requests_per_day=200,
        tokens_per_minute=200_000,
        tokens_per_day=2_000_000,
        concurrent_requests=3,
    ),
    RateLimitTier.TIER_2: RateLimitConfig(
        requests_per_minute=3_500,
        requests_per_day=10_000,
        tokens_per_minute=2_000_000,
        tokens_per_day=20_000_000,
        concurrent_requests=50,
    ),
    RateLimitTier.TIER_3: RateLimitConfig(
        requests_per_minute=5_000,
        requests_per_day=10_000,
        tokens_per_minute=4_000_000,
        tokens_per_day=40_000_000,
        concurrent_requests=100,
    ),
    RateLimitTier.TIER_4: RateLimitConfig(
        requests_per_minute=10_000,
        requests_per_day=30_000,
        tokens_per_minute=10_000_000,
        tokens_per_day=1_000_000_000,
        concurrent_requests=200,
    ),
    RateLimitTier.TIER_5: RateLimitConfig(
        requests_per_minute=30_000,
        requests_per_day=100_000,
        tokens_per_minute=150_000_000,
        tokens_per_day=15_000_000_000,
        concurrent_requests=500,
    ),
}

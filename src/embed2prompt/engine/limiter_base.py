"""What both limiters share: the status they report, the interface the executor needs,
the checks of their arguments, and the estimate that prices calls given no token count.

:class:`~embed2prompt.engine.limiter.OpenAIRateLimiter` keeps its state in the process;
:class:`~embed2prompt.engine.redis_limiter.RedisRateLimiter` keeps it in Redis, shared by
every process. Both satisfy :class:`RateLimiter` and hand out permits that satisfy
:class:`LimiterPermit`, so the executor and the processor never ask which one they hold.
"""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from embed2prompt.engine.adaptive import RateChange
from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import ConfigurationError, RequestTooLargeError

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit: its size, what has been used of it, and what could start right now."""

    limit: float
    used_last_window: float
    available_now: float


@dataclass(frozen=True, slots=True)
class LimiterStatus:
    """A snapshot of a limiter, from its ``status()`` or ``astatus()``.

    ``used_last_window`` is the trailing 60 s (to the second) for per-minute limits, and
    everything since the limiter was created (or its shared state was reset) for per-day
    limits.
    """

    in_flight: int
    concurrent_limit: int
    waiting: int
    requests_per_minute: LimitUsage
    requests_per_day: LimitUsage
    tokens_per_minute: LimitUsage
    tokens_per_day: LimitUsage
    requests_started: int
    tokens_reserved: float
    wait_time_s: float
    paused_for_s: float
    server_pauses: int
    header_tightenings: int
    # The share of the (configured or header-reported) per-minute limits in use, below 1
    # after 429s without limit headers; the limits above are already multiplied by it.
    rate_share: float = 1.0
    rate_reason: str = RateChange.CONFIGURED
    rate_decreases: int = 0


class LimiterPermit(Protocol):
    """What a call holds while it runs: the in-process limiter's or the shared one's."""

    reserved_tokens: float

    def record_usage(self, actual_tokens: float) -> None: ...
    def observe_headers(self, headers: RateLimitHeaders) -> None: ...
    def refund(self) -> None: ...
    async def rate_limited(self, headers: RateLimitHeaders) -> bool: ...
    def succeeded(self) -> None: ...


class RateLimiter(Protocol):
    """What the executor needs of a limiter: :class:`OpenAIRateLimiter` (one process) or
    :class:`~embed2prompt.engine.redis_limiter.RedisRateLimiter` (shared through Redis).

    ``status()`` answers at once from what this process knows; ``await astatus()``
    gives the complete figures, for the shared limiter every process's, read from Redis.
    For the in-process limiter the two are the same.
    """

    config: RateLimitConfig

    def acquire(self, tokens: float = 0) -> AbstractAsyncContextManager[LimiterPermit]: ...
    def pause_for(self, seconds: float) -> None: ...
    def status(self) -> LimiterStatus: ...
    async def astatus(self) -> LimiterStatus: ...


class UsageEstimate:
    """What calls really use, as a moving mean, to price calls that reserve no tokens.

    Calls that reserve no tokens (the caller gave no estimate) are charged the mean usage
    reported so far. Before the first report they reserve nothing, so the first wave of
    unestimated calls can exceed TPM: pass estimates to be exact.
    """

    __slots__ = ("mean",)

    def __init__(self) -> None:
        self.mean: float | None = None

    def reservation(self, tokens: float, config: RateLimitConfig) -> float:
        """The tokens to reserve for a call estimated at ``tokens`` (0: no estimate)."""
        if tokens or self.mean is None:
            return tokens
        return min(self.mean, config.tokens_per_minute)

    def learn(self, actual_tokens: float) -> None:
        if self.mean is None:
            self.mean = actual_tokens
        else:
            self.mean += 0.2 * (actual_tokens - self.mean)


def limit_config(config: object, owner: str) -> RateLimitConfig:
    """The limits a limiter was given: a config, or a tier's config."""
    if isinstance(config, RateLimitTier):
        return config.config
    if not isinstance(config, RateLimitConfig):
        raise ConfigurationError(
            f"{owner} needs a RateLimitConfig or RateLimitTier, got {type(config).__name__}"
        )
    return config


def check_call_tokens(config: RateLimitConfig, tokens: object) -> None:
    """Refuse a token estimate that is not a number, or that no limit could ever admit."""
    if isinstance(tokens, bool) or not isinstance(tokens, int | float):
        raise ConfigurationError(f"tokens must be a number, got {type(tokens).__name__}")
    if tokens < 0 or not math.isfinite(tokens):
        raise ConfigurationError(f"tokens must be a non-negative number, got {tokens!r}")
    if tokens > config.tokens_per_minute or tokens > config.tokens_per_day:
        raise RequestTooLargeError(
            f"a call estimated at {tokens:g} tokens can never fit the limits of "
            f"{config.tokens_per_minute:g} tokens per minute and "
            f"{config.tokens_per_day:g} tokens per day; split it into smaller calls"
        )


def check_actual_tokens(actual_tokens: float) -> None:
    """Refuse a reported usage that is negative or not finite."""
    if actual_tokens < 0 or not math.isfinite(actual_tokens):
        raise ConfigurationError(
            f"actual_tokens must be a non-negative number, got {actual_tokens!r}"
        )

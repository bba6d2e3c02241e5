"""Learning a server's real rate limit from its 429s, when it sends no limit headers.

A client told a higher limit than the server really allows (a shared organisation key, a
proxy in front, a model with lower limits than its tier's table) learns nothing from
``x-ratelimit-*`` headers when the server sends none, as most OpenAI-compatible servers
do. Pausing for each 429's Retry-After is not enough: a server that counts rejected
requests against its window stays full as long as the client resends at its configured
rate, so every retry is refused again.

So the limiter treats a 429 ``rate_limit_exceeded`` without limit headers as congestion,
and does what TCP's congestion control does (AIMD): it multiplies its effective request
and token rates by ``decrease_factor`` (multiplicative decrease), and once calls succeed
again it adds ``increase_step`` of the limit for each window of successes (additive
increase), probing back up slowly. The effective rate never exceeds the configured (or
header-reported) limit and never falls below ``floor`` of it.

A burst of calls admitted at the same too-high rate comes back as a burst of 429s; only
the first of them may lower the rate. Every decrease starts a new *generation*, and a
429 lowers the rate again only for a call admitted in the current generation, at the
rate already lowered once. A call admitted in an older generation was admitted at a rate
since found too high: its 429 was the limiter's error, not the call's, and the executor
does not count it against the call's retry budget (:meth:`AdaptiveRate.rejected`).

The in-process limiter keeps this state in an :class:`AdaptiveRate`; the shared limiter
keeps the same state in Redis and runs the same rules in Lua, with the parameters of the
same :class:`AdaptivePolicy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from embed2prompt.errors import ConfigurationError


class RateChange(StrEnum):
    """Why the limiter's effective rate last changed."""

    CONFIGURED = "configured"  # never changed
    LIMIT_HEADERS = "limit_headers"  # lowered to the limit the server's headers reported
    REJECTED = "rejected_429"  # lowered after a 429 without limit headers
    PROBING = "probing"  # raised after a window of successes


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """How fast the effective rate falls on 429s and climbs back; shares are of the limit.

    ``decrease_factor``: the share kept at each decrease. Gentler than TCP's half,
    because one 429 at the very edge of the limit would otherwise cost a client told the
    right limit a quarter of its throughput while it climbs back; repeated 429s still
    bring the rate down within seconds (0.7 to the tenth power is 3%).
    ``increase_step``: the share added after each window of successes.
    ``window_s``: a window of successes is as many calls as the effective rate admits in
    this many seconds, so the rate climbs by ``increase_step`` about every ``window_s``
    while calls keep coming, and not at all while none do.
    ``floor``: the lowest share, so that a run of 429s cannot stop the limiter.
    """

    decrease_factor: float = 0.7
    increase_step: float = 0.05
    window_s: float = 2.0
    floor: float = 0.05

    def __post_init__(self) -> None:
        for name in ("decrease_factor", "increase_step", "floor"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < 1):
                raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigurationError(f"window_s must be a positive number, got {self.window_s!r}")

    def successes_per_increase(self, share: float, limit_per_minute: float) -> float:
        """Successes in one window at the effective rate ``share * limit_per_minute``."""
        return max(1.0, share * limit_per_minute * self.window_s / 60.0)


class AdaptiveRate:
    """The share of the limits the in-process limiter uses, and why it last changed."""

    __slots__ = ("_successes", "decreases", "generation", "increases", "policy", "reason", "share")

    def __init__(self, policy: AdaptivePolicy) -> None:
        self.policy = policy
        self.share = 1.0
        self.generation = 0  # bumped by every decrease
        self.decreases = 0
        self.increases = 0
        self.reason = RateChange.CONFIGURED
        self._successes = 0.0  # of the current generation, since the last change

    def rejected(self, generation: int) -> bool:
        """A call admitted in ``generation`` got a 429 without limit headers.

        Lowers the share if the call was admitted at the current rate. True if the call
        was admitted at a rate now known to be too high (its 429 is the limiter's error);
        False at the floor, where the rate cannot be blamed any more.
        """
        if generation < self.generation:
            return True
        if self.share <= self.policy.floor:
            return False
        self.share = max(self.policy.floor, self.share * self.policy.decrease_factor)
        self.generation += 1
        self.decreases += 1
        self.reason = RateChange.REJECTED
        self._successes = 0.0
        return True

    def succeeded(self, generation: int, limit_per_minute: float) -> bool:
        """A call admitted in ``generation`` succeeded; True if that raised the share."""
        if self.share >= 1.0 or generation < self.generation:
            return False  # nothing to probe for, or admitted before the last decrease
        self._successes += 1
        if self._successes < self.policy.successes_per_increase(self.share, limit_per_minute):
            return False
        self.share = min(1.0, self.share + self.policy.increase_step)
        self.increases += 1
        self.reason = RateChange.PROBING
        self._successes = 0.0
        return True

"""Learning a server's real rate limit from its 429s, when it sends no limit headers.

A client told a higher limit than the server really allows (a shared organisation key, a
proxy in front, a model with lower limits than its tier's table) learns nothing from
``x-ratelimit-*`` headers when the server sends none, as most OpenAI-compatible servers
do. Pausing for each 429's Retry-After is not enough: a server that counts rejected
requests against its window stays full as long as the client resends at its configured
rate, so every retry is refused again.

So the limiter treats a 429 ``rate_limit_exceeded`` without limit headers as congestion,
and does what TCP's congestion control does. It multiplies its effective request and
token rates by ``decrease_factor`` (multiplicative decrease), and remembers the rate the
server was seen to accept: the calls that succeeded in the trailing minute, since limits
are per minute. Once a window of calls admitted at the lowered rate has succeeded, it
returns to that rate at once (TCP's fast recovery), and beyond it probes slowly, adding
``increase_step`` of the limit for each ``probe_window_s`` of successes (additive
increase): a step per minute by default, because a server counting a per-minute window
shows an overshoot only up to a minute later, as a run of 429s that costs far more than
the step gained. While a server's window is still full of earlier calls, every call is
refused whatever the rate, so a run of 429s drives the rate to the floor; that wastes
nothing (the server refuses anyway, and each refusal it counts delays its recovery),
and the first successes afterwards restore the rate it accepted. The effective rate
never exceeds the configured (or header-reported) limit and never falls below ``floor``
of it.

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
    ``window_s``: a window of successes is as many calls as the effective rate admits in
    this many seconds; after one such window below the rate the server accepted in the
    minute before the last decrease, the share returns to that rate.
    ``increase_step``: at or above the rate the server accepted, the share added after
    each window of ``probe_window_s`` (a step about every ``probe_window_s`` while calls
    keep coming, and none while none do).
    ``floor``: the lowest share, so that a run of 429s cannot stop the limiter.
    """

    decrease_factor: float = 0.7
    increase_step: float = 0.05
    window_s: float = 2.0
    floor: float = 0.05
    probe_window_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("decrease_factor", "increase_step", "floor"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < 1):
                raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
        for name in ("window_s", "probe_window_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")

    def successes_per_increase(
        self, share: float, limit_per_minute: float, *, recovering: bool = True
    ) -> float:
        """Successes in one window at the effective rate ``share * limit_per_minute``:
        ``window_s`` of them while recovering, ``probe_window_s`` while probing."""
        window_s = self.window_s if recovering else self.probe_window_s
        return max(1.0, share * limit_per_minute * window_s / 60.0)

    def decreased(self, share: float, accepted_share: float) -> tuple[float, float]:
        """A 429 at ``share``: the share to use now, and the share to recover to (what the
        server accepted in the trailing minute, ``accepted_share``, if that is more)."""
        lowered = max(self.floor, share * self.decrease_factor)
        return lowered, max(lowered, min(1.0, accepted_share))

    def increased(self, share: float, recover_to: float) -> float:
        """The share after a window of successes at ``share``."""
        if share < recover_to:
            return recover_to
        return min(1.0, share + self.increase_step)


class AdaptiveRate:
    """The share of the limits the in-process limiter uses, and why it last changed."""

    __slots__ = (
        "_successes",
        "decreases",
        "generation",
        "increases",
        "policy",
        "reason",
        "recover_to",
        "share",
    )

    def __init__(self, policy: AdaptivePolicy) -> None:
        self.policy = policy
        self.share = 1.0
        self.recover_to = 1.0  # the share the server was seen to accept before a decrease
        self.generation = 0  # bumped by every decrease
        self.decreases = 0
        self.increases = 0
        self.reason = RateChange.CONFIGURED
        self._successes = 0.0  # of the current generation, since the last change

    def rejected(self, generation: int, accepted_share: float = 0.0) -> bool:
        """A call admitted in ``generation`` got a 429 without limit headers.

        ``accepted_share``: the calls that succeeded in the trailing minute, as a share of
        the per-minute limit. Lowers the share if the call was admitted at the current
        rate. True if the call was admitted at a rate now known to be too high (its 429 is
        the limiter's error); False at the floor, where the rate cannot be blamed any more.
        """
        if generation < self.generation:
            return True
        if self.share <= self.policy.floor:
            return False
        self.share, self.recover_to = self.policy.decreased(self.share, accepted_share)
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
        recovering = self.share < self.recover_to
        needed = self.policy.successes_per_increase(
            self.share, limit_per_minute, recovering=recovering
        )
        if self._successes < needed:
            return False
        self.share = self.policy.increased(self.share, self.recover_to)
        self.increases += 1
        self.reason = RateChange.PROBING
        self._successes = 0.0
        return True

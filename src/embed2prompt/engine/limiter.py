"""An async rate limiter that admits a call only when it fits every limit at once.

Usage, around exactly one API call::

    limiter = OpenAIRateLimiter(RateLimitTier.TIER_2.config)
    async with limiter.acquire(tokens=estimate) as permit:
        response = await call()
        permit.record_usage(response.usage.total_tokens)
        permit.observe_headers(RateLimitHeaders.from_headers(response.headers))

How it decides
--------------
Each of the four rate limits (RPM, RPD, TPM, TPD) is a GCRA bucket (the "generic cell
rate algorithm", a token bucket stored as the single time at which it will be full again).
A bucket of capacity ``burst`` refilled at ``rate`` per second lets at most
``rate * T + burst`` units start in any interval of T seconds. The per-minute buckets get a
small burst (one second's worth by default), so calls are paced smoothly instead of
spending a minute's allowance at once, which servers that enforce limits over sub-minute
periods answer with 429s. The per-day buckets may spend their whole allowance in a burst,
because that is what a daily budget means.

Tokens are *reserved* from the caller's estimate before the call and corrected by
:meth:`Permit.record_usage` after it, so concurrent calls can never overrun TPM together:
the classic failure of limiters that count usage only when responses come back.

A server that answers 429 ``rate_limit_exceeded`` without limit headers has a lower
limit than the limiter was told: the limiter then lowers its effective request and token
rates, returns to the rate the server accepted once calls succeed again, and probes
beyond it slowly (:mod:`embed2prompt.engine.adaptive`).

Waiters are served strictly first come, first served: only the head of the queue looks
at the buckets, so a large call is never starved by a stream of small ones. A cancelled
or failed call gives back its concurrency slot in ``__aexit__`` and never leaks capacity.

Time is the running event loop's clock, so tests can fake it (``looptime``) and never
sleep.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from types import TracebackType

from embed2prompt.engine.adaptive import AdaptivePolicy, AdaptiveRate, RateChange
from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.limiter_base import (
    SECONDS_PER_DAY,
    LimiterPermit,
    LimiterStatus,
    LimitUsage,
    RateLimiter,
    UsageEstimate,
    check_actual_tokens,
    check_call_tokens,
    limit_config,
)
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier

__all__ = [
    "LimitUsage",
    "LimiterPermit",
    "LimiterStatus",
    "OpenAIRateLimiter",
    "Permit",
    "RateLimiter",
]
# Buckets are compared with this much slack so that float rounding after a timed wait
# never costs a second round trip through the event loop.
_EPSILON = 1e-9
# The shortest wait: a shorter one is rounded up to it, never down to 0 (which would admit
# a little over the limit), since a timer that short may fire before the clock has
# visibly moved, which would spin the loop.
_MIN_WAIT_S = 1e-6


class _Bucket:
    """A GCRA bucket: ``burst`` units of capacity, refilled continuously at ``rate``/s."""

    __slots__ = ("_configured", "_full_at", "burst", "rate")

    def __init__(self, *, per_second: float, burst: float) -> None:
        self.rate = per_second
        self.burst = burst
        self._configured = (per_second, burst)
        self._full_at = -math.inf  # starts full

    def available(self, now: float) -> float:
        return self.burst - max(0.0, self._full_at - now) * self.rate

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` units fit. A cost above the burst waits for a full bucket
        and then drives it into debt, which later calls pay back by waiting; a cost of 0
        (usage unknown in advance) waits only while the bucket is in debt."""
        need = min(cost, self.burst)
        deficit = need - self.available(now)
        # available() rounds by about epsilon times the burst (burst - seconds x rate):
        # a deficit within that is none.
        if deficit <= _EPSILON * max(1.0, self.burst):
            return 0.0
        return max(deficit / self.rate, _MIN_WAIT_S)

    def take(self, cost: float, now: float) -> None:
        self._full_at = max(self._full_at, now) + cost / self.rate

    def adjust(self, extra: float, now: float) -> None:
        """Charge ``extra`` more units (negative: refund) for a call already admitted.

        A charge counts from now even if the bucket was full (on a full bucket's stale
        time it would be lost); a refund never makes the bucket more than full.
        """
        if extra > 0:
            self._full_at = max(self._full_at, now) + extra / self.rate
        else:
            self._full_at += extra / self.rate

    def retune(self, per_second: float, now: float) -> None:
        """Refill at ``per_second`` from now on, keeping what is available (or the debt).

        Below the configured rate the burst shrinks to at most one second's worth, so a
        lowered rate is not overrun by a burst sized for the configured one.
        """
        if per_second == self.rate:
            return
        available = self.available(now)  # negative while in debt: the debt is kept
        rate, burst = self._configured
        self.rate = per_second
        self.burst = burst if per_second >= rate else min(burst, max(1.0, per_second))
        self._full_at = now + (self.burst - min(available, self.burst)) / self.rate

    def cap(self, remaining: float, now: float) -> bool:
        """Lower what is available now to ``remaining``; never raises it. True if lowered."""
        if remaining >= self.available(now):
            return False
        self._full_at = now + (self.burst - max(0.0, remaining)) / self.rate
        return True


class Permit:
    """The right to make one call, handed out by :meth:`OpenAIRateLimiter.acquire`."""

    __slots__ = ("_limiter", "generation", "reserved_tokens")

    def __init__(self, limiter: OpenAIRateLimiter, reserved_tokens: float) -> None:
        self._limiter = limiter
        self.reserved_tokens = reserved_tokens
        self.generation = limiter._adaptive.generation  # the rate it was admitted at

    def record_usage(self, actual_tokens: float) -> None:
        """Correct the token reservation to what the response says the call used."""
        check_actual_tokens(actual_tokens)
        self._limiter._correct_tokens(actual_tokens - self.reserved_tokens)
        self._limiter._usage.learn(actual_tokens)
        self.reserved_tokens = actual_tokens

    def observe_headers(self, headers: RateLimitHeaders) -> None:
        """Tighten the limiter to what the server reports as remaining."""
        self._limiter.observe_headers(headers)

    def refund(self) -> None:
        """The server refused the call (a 429): it used none of its reserved tokens."""
        self._limiter._correct_tokens(-self.reserved_tokens)
        self.reserved_tokens = 0

    async def rate_limited(self, headers: RateLimitHeaders) -> bool:
        """The server answered 429 ``rate_limit_exceeded``, with these limit headers.

        Without headers, the limiter lowers its rate (see
        :mod:`~embed2prompt.engine.adaptive`). True if the call was admitted at a rate now
        known to be too high, so that its 429 is not the call's own failure.
        """
        return self._limiter._rejected(self.generation, headers)

    def succeeded(self) -> None:
        """The call succeeded: counted towards the rate the server accepts, and a step
        towards raising a lowered rate again."""
        self._limiter._succeeded(self.generation)


class _Acquisition:
    """The async context manager returned by :meth:`OpenAIRateLimiter.acquire`."""

    __slots__ = ("_limiter", "_permit", "_tokens")

    def __init__(self, limiter: OpenAIRateLimiter, tokens: float) -> None:
        self._limiter = limiter
        self._tokens = tokens
        self._permit: Permit | None = None

    async def __aenter__(self) -> Permit:
        reserved = await self._limiter._admit(self._tokens)
        self._permit = Permit(self._limiter, reserved)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._limiter._release()


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class OpenAIRateLimiter:
    """Admits calls within concurrency, RPM, RPD, TPM and TPD limits, fairly and smoothly.

    Use one limiter per organisation (per API key) and event loop; share it between all
    tasks that call that API. Construct it with a :class:`RateLimitConfig` or a
    :class:`RateLimitTier`.
    """

    def __init__(
        self,
        config: RateLimitConfig | RateLimitTier,
        *,
        clock: Callable[[], float] = _loop_time,
        adaptive: AdaptivePolicy | None = None,
    ) -> None:
        config = limit_config(config, "OpenAIRateLimiter")
        self.config = config
        self._now = clock
        self._adaptive = AdaptiveRate(adaptive or AdaptivePolicy())
        # Per-minute request and token rates per second: as configured, or lower as the
        # server's headers reported. The buckets refill at these times the adaptive share.
        self._ceilings = [config.requests_per_minute / 60.0, config.tokens_per_minute / 60.0]
        self._rpm = _Bucket(
            per_second=config.requests_per_minute / 60.0, burst=config.effective_request_burst
        )
        self._tpm = _Bucket(
            per_second=config.tokens_per_minute / 60.0, burst=config.effective_token_burst
        )
        self._rpd = _Bucket(
            per_second=config.requests_per_day / SECONDS_PER_DAY, burst=config.requests_per_day
        )
        self._tpd = _Bucket(
            per_second=config.tokens_per_day / SECONDS_PER_DAY, burst=config.tokens_per_day
        )
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._paused_until = -math.inf
        # [whole second, requests, tokens, successes] per second of the trailing minute, for
        # status() and for the rate the server accepted (adaptive); aggregated per second
        # so memory stays flat at any request rate.
        self._recent: deque[list[float]] = deque()
        self._requests_started = 0
        self._tokens_reserved = 0.0
        self._wait_time = 0.0
        self._server_pauses = 0
        self._header_tightenings = 0
        self._usage = UsageEstimate()

    # ------------------------------------------------------------------ public API

    def acquire(self, tokens: float = 0) -> _Acquisition:
        """Wait for room for one call expected to use ``tokens`` tokens; see the module doc.

        Raises :class:`RequestTooLargeError` at once if the call could never fit.
        """
        check_call_tokens(self.config, tokens)
        return _Acquisition(self, tokens)

    def pause_for(self, seconds: float) -> None:
        """Stop admitting anyone for ``seconds``: the server said to wait (429, 503)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        until = self._now() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._server_pauses += 1

    def observe_headers(self, headers: RateLimitHeaders) -> None:
        """Tighten to the limits and remaining requests and tokens the server reported.

        A per-minute limit lower than configured is adopted, so a limiter set up for the
        wrong tier corrects itself on the first response. OpenAI's limits refill
        continuously, so "nothing left" means the next unit comes in about 60/limit
        seconds, not at the reset time (when the limit is whole again): the bucket is
        emptied and refills at its rate. Only a server that reports no limit to refill
        from pauses everyone until its reset time.
        """
        if headers.is_empty:
            return
        now = self._now()
        reports = (
            (headers.remaining_requests, headers.limit_requests, headers.reset_requests_s),
            (headers.remaining_tokens, headers.limit_tokens, headers.reset_tokens_s),
        )
        for index, (remaining, limit, reset) in enumerate(reports):
            bucket = (self._rpm, self._tpm)[index]
            if limit is not None and limit > 0 and limit / 60.0 < self._ceilings[index]:
                self._ceilings[index] = limit / 60.0
                self._retune(now, RateChange.LIMIT_HEADERS)
                self._header_tightenings += 1
            if remaining is None:
                continue
            if bucket.cap(remaining, now):
                self._header_tightenings += 1
            if remaining <= 0 and limit is None and reset is not None:
                self.pause_for(reset)

    async def astatus(self) -> LimiterStatus:
        """The same as :meth:`status`: everything this limiter knows is in this process."""
        return self.status()

    def status(self) -> LimiterStatus:
        """Usage against each limit, waiting, pauses and the adaptive rate, now."""
        now = self._now()
        self._forget_before(now - 60.0)
        minute_requests = int(sum(entry[1] for entry in self._recent))
        minute_tokens = sum(entry[2] for entry in self._recent)
        config = self.config
        return LimiterStatus(
            in_flight=self._in_flight,
            concurrent_limit=config.concurrent_requests,
            waiting=len(self._waiters),
            requests_per_minute=LimitUsage(
                self._rpm.rate * 60.0, minute_requests, self._rpm.available(now)
            ),
            requests_per_day=LimitUsage(
                config.requests_per_day, self._requests_started, self._rpd.available(now)
            ),
            tokens_per_minute=LimitUsage(
                self._tpm.rate * 60.0, minute_tokens, self._tpm.available(now)
            ),
            tokens_per_day=LimitUsage(
                config.tokens_per_day, self._tokens_reserved, self._tpd.available(now)
            ),
            requests_started=self._requests_started,
            tokens_reserved=self._tokens_reserved,
            wait_time_s=self._wait_time,
            paused_for_s=max(0.0, self._paused_until - now),
            server_pauses=self._server_pauses,
            header_tightenings=self._header_tightenings,
            rate_share=self._adaptive.share,
            rate_reason=self._adaptive.reason,
            rate_decreases=self._adaptive.decreases,
        )

    # ------------------------------------------------------------------ admission

    def _reservation(self, tokens: float) -> float:
        return self._usage.reservation(tokens, self.config)

    def _delay(self, tokens: float, now: float) -> float:
        """Seconds until a call of ``tokens`` fits every limit; ``inf`` while all slots
        are taken (a released slot wakes the head of the queue)."""
        if self._in_flight >= self.config.concurrent_requests:
            return math.inf
        delay = max(
            self._paused_until - now,
            self._rpm.wait(1, now),
            self._rpd.wait(1, now),
            # Even a call that reserves no tokens waits while earlier calls' usage has
            # put the token buckets in debt.
            self._tpm.wait(tokens, now),
            self._tpd.wait(tokens, now),
        )
        return delay if delay >= _MIN_WAIT_S else 0.0

    def _take(self, estimate: float, now: float) -> float:
        """Admit a call now; returns its token reservation."""
        tokens = self._reservation(estimate)
        self._in_flight += 1
        self._rpm.take(1, now)
        self._rpd.take(1, now)
        self._tpm.take(tokens, now)
        self._tpd.take(tokens, now)
        self._requests_started += 1
        self._tokens_reserved += tokens
        self._count_recent(now, 1, tokens, 0)
        return tokens

    async def _admit(self, tokens: float) -> float:
        """Wait for the call's turn and room; returns the tokens reserved for it."""
        now = self._now()
        if not self._waiters and self._delay(self._reservation(tokens), now) == 0.0:
            return self._take(tokens, now)  # fast path: nobody queued and it fits
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        if self._waiters[0] is turn:
            turn.set_result(None)
        started = now
        try:
            await turn
            while (delay := self._delay(self._reservation(tokens), self._now())) > 0.0:
                await self._sleep_or_wake(delay)
            return self._take(tokens, self._now())
        finally:
            self._wait_time += self._now() - started
            self._leave_queue(turn)

    def _leave_queue(self, turn: asyncio.Future[None]) -> None:
        if self._waiters and self._waiters[0] is turn:
            self._waiters.popleft()
            if self._waiters and not self._waiters[0].done():
                self._waiters[0].set_result(None)  # the next in line may go now
        else:
            self._waiters.remove(turn)

    async def _sleep_or_wake(self, delay: float) -> None:
        """Sleep up to ``delay`` seconds; capacity freed meanwhile wakes us early."""
        loop = asyncio.get_running_loop()
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup = wakeup
        timer = None if math.isinf(delay) else loop.call_later(delay, _resolve, wakeup)
        try:
            await wakeup
        finally:
            if timer is not None:
                timer.cancel()
            if self._wakeup is wakeup:
                self._wakeup = None

    def _poke(self) -> None:
        if self._wakeup is not None:
            _resolve(self._wakeup)

    # ------------------------------------------------------------------ after admission

    def _release(self) -> None:
        self._in_flight -= 1
        self._poke()

    def _rejected(self, generation: int, headers: RateLimitHeaders) -> bool:
        if not headers.is_empty:
            return False  # the headers say the limits: observe_headers adopts them
        now = self._now()
        self._forget_before(now - 60.0)
        accepted = sum(entry[3] for entry in self._recent) / (self._ceilings[0] * 60.0)
        share = self._adaptive.share
        blamed = self._adaptive.rejected(generation, accepted)
        if self._adaptive.share != share:
            self._retune(now, RateChange.REJECTED)
        return blamed

    def _succeeded(self, generation: int) -> None:
        now = self._now()
        self._count_recent(now, 0, 0.0, 1)
        if self._adaptive.succeeded(generation, self._ceilings[0] * 60.0):
            self._retune(now, RateChange.PROBING)
            self._poke()  # a waiter may fit at the higher rate now

    def _retune(self, now: float, reason: RateChange) -> None:
        """Refill the per-minute buckets at their ceilings times the adaptive share."""
        share = self._adaptive.share
        self._rpm.retune(self._ceilings[0] * share, now)
        self._tpm.retune(self._ceilings[1] * share, now)
        self._adaptive.reason = reason

    def _correct_tokens(self, extra: float) -> None:
        if not extra:
            return
        now = self._now()
        self._tpm.adjust(extra, now)
        self._tpd.adjust(extra, now)
        self._tokens_reserved += extra
        self._count_recent(now, 0, extra, 0)
        if extra < 0:
            self._poke()

    def _count_recent(self, now: float, requests: int, tokens: float, successes: int) -> None:
        second = math.floor(now)
        recent = self._recent
        if recent and recent[-1][0] == second:
            recent[-1][1] += requests
            recent[-1][2] += tokens
            recent[-1][3] += successes
        else:
            recent.append([second, requests, tokens, successes])
            self._forget_before(now - 60.0)

    def _forget_before(self, cutoff: float) -> None:
        recent = self._recent
        while recent and recent[0][0] + 1 <= cutoff:
            recent.popleft()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

"""One API call under the limiter and the retry policy: the one place the two meet.

For each attempt the executor waits for a permit, makes the call, reports the tokens the
response used and its rate-limit headers back to the limiter, and on failure asks the
retry policy whether and when to try again. A 429 ``rate_limit_exceeded`` or a 503 pauses
the whole limiter, so every worker waits for the server, not only the one that was told.

A 429 for a call the limiter admitted at a rate it has since found too high (see
:mod:`embed2prompt.engine.adaptive`) is the limiter's error, not the call's: it is retried
without spending the call's ``max_attempts``, so a storm while the limiter learns the
server's real limit cannot use up the items' retries. ``max_adapting_retries`` bounds
those free retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, runtime_checkable

from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.limiter_base import RateLimiter
from embed2prompt.engine.metrics import CallStats, current_call_stats
from embed2prompt.engine.retry import (
    Failure,
    RetryPolicy,
    classify,
    is_retryable,
    parse_retry_after,
)
from embed2prompt.errors import RetriesExhaustedError

T = TypeVar("T")


@runtime_checkable
class ReportsUsage(Protocol):
    """A call result that says what it cost; the executor feeds this back to the limiter."""

    @property
    def tokens_used(self) -> int | None: ...

    @property
    def rate_limit(self) -> RateLimitHeaders: ...


class CallExecutor:
    """Runs zero-argument async calls with limiting and retries.

    ``limiter=None`` runs without limits (a local model, a server with none).
    """

    def __init__(
        self,
        *,
        limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        attempt_timeout_s: float | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self.retry_policy = retry_policy or RetryPolicy()
        self.attempt_timeout_s = attempt_timeout_s
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock

    async def aclose(self) -> None:
        """Release what the limiter holds (the shared limiter's Redis connections)."""
        close = getattr(self.limiter, "aclose", None)
        if close is not None:
            await close()

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        tokens: float = 0,
        stats: CallStats | None = None,
    ) -> T:
        """Return ``fn()``'s result, retrying retryable failures.

        ``tokens`` is the estimate reserved against the token limits. Attempts, retries,
        429s and tokens are added to ``stats``, by default the current item's counters.

        Raises the original exception for failures that must not be retried (so callers
        see, say, an ``openai.AuthenticationError``), and :class:`RetriesExhaustedError`
        when retryable failures outlast the policy.
        """
        if stats is None:
            stats = current_call_stats.get() or CallStats()
        policy = self.retry_policy
        attempt = 0
        free_retries = 0  # after 429s the limiter owned: not counted against max_attempts
        while True:
            attempt += 1
            stats.attempts += 1
            verdict = _Verdict()
            try:
                return await self._attempt(fn, tokens, stats, verdict)
            except Exception as error:
                failure = classify(error)
                if failure is None:
                    raise  # a bug, not an API failure: retrying would hide it
                if failure.status == 429:
                    stats.rate_limited += 1
                counted = attempt - free_retries
                if verdict.limiter_was_wrong and free_retries < policy.max_adapting_retries:
                    free_retries += 1
                    stats.adapting_retries += 1
                    delay: float | None = policy.wait_before_retry(
                        failure, attempt=attempt, rng=self._rng, now=self._wall_clock()
                    )
                else:
                    delay = policy.delay_before_retry(
                        failure, attempt=counted, rng=self._rng, now=self._wall_clock()
                    )
                if failure.asks_everyone_to_wait and self.limiter is not None:
                    # Everyone waits what the server said, even if this call gives up.
                    server_wait = parse_retry_after(failure.headers, now=self._wall_clock())
                    if server_wait is None:  # no word from the server: a backoff's worth
                        server_wait = delay if delay is not None else policy.base_delay_s
                    # Capped like the call's own wait: a bogus retry-after of a day must not
                    # stall every worker for a day.
                    self.limiter.pause_for(min(server_wait, policy.max_retry_after_s))
                if delay is None:
                    if counted >= policy.max_attempts and is_retryable(failure):
                        raise RetriesExhaustedError(
                            f"gave up after {attempt} attempts: {_describe(failure)}",
                            attempts=attempt,
                            status=failure.status,
                            code=failure.code,
                        ) from error
                    raise
                stats.retries += 1
                stats.retry_wait_s += delay
                await asyncio.sleep(delay)

    async def _attempt(
        self, fn: Callable[[], Awaitable[T]], tokens: float, stats: CallStats, verdict: _Verdict
    ) -> T:
        if self.limiter is None:
            result = await self._run(fn)
            if isinstance(result, ReportsUsage) and result.tokens_used is not None:
                stats.tokens_used += result.tokens_used
            return result
        async with self.limiter.acquire(tokens=tokens) as permit:
            try:
                result = await self._run(fn)
            except Exception as error:
                failure = classify(error)
                if failure is None:
                    raise
                if failure.status == 429:
                    permit.refund()  # refused, so it used no tokens
                headers = RateLimitHeaders.from_headers(failure.headers)
                permit.observe_headers(headers)
                if failure.is_rate_limit:
                    verdict.limiter_was_wrong = await permit.rate_limited(headers)
                raise
            permit.succeeded()
            if isinstance(result, ReportsUsage):
                if result.tokens_used is not None:
                    permit.record_usage(result.tokens_used)
                    stats.tokens_used += result.tokens_used
                permit.observe_headers(result.rate_limit)
            return result

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self.attempt_timeout_s is None:
            return await fn()
        async with asyncio.timeout(self.attempt_timeout_s):
            return await fn()


class _Verdict:
    """What the limiter said of an attempt's 429: was the call admitted at a rate it has
    since found too high?"""

    __slots__ = ("limiter_was_wrong",)

    def __init__(self) -> None:
        self.limiter_was_wrong = False


def _describe(failure: Failure) -> str:
    if failure.status is None:
        return f"{failure.kind} error: {failure.message}"
    code = f" {failure.code}" if failure.code else ""
    return f"HTTP {failure.status}{code}: {failure.message}"

"""CallExecutor: the limiter and the retry policy combined, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx2
import openai
import pytest

from embed2prompt import RetriesExhaustedError
from embed2prompt.engine import (
    CallExecutor,
    CallStats,
    OpenAIRateLimiter,
    RateLimitConfig,
    RateLimitHeaders,
    RetryPolicy,
)

pytestmark = pytest.mark.looptime

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/embeddings")


def status_error(status: int, code: str | None = None, **headers: str) -> openai.APIStatusError:
    body = {"error": {"message": f"status {status}", "type": "x", "code": code}}
    response = httpx2.Response(status, request=REQUEST, headers=headers, json=body)
    return openai.APIStatusError(f"status {status}", response=response, body=body)


@dataclass
class Flaky:
    """Fails with the given errors in turn, then succeeds."""

    errors: list[BaseException]
    calls: list[float] = field(default_factory=list)

    async def __call__(self) -> str:
        self.calls.append(asyncio.get_running_loop().time())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def limiter() -> OpenAIRateLimiter:
    return OpenAIRateLimiter(
        RateLimitConfig(
            requests_per_minute=60_000,
            requests_per_day=1e9,
            tokens_per_minute=1e9,
            tokens_per_day=1e12,
            concurrent_requests=100,
        )
    )


async def test_retries_transient_failures_with_backoff() -> None:
    fn = Flaky([status_error(500), openai.APIConnectionError(request=REQUEST)])
    stats = CallStats()
    executor = CallExecutor(retry_policy=RetryPolicy(max_attempts=3), rng=random.Random(1))
    assert await executor.call(fn, stats=stats) == "ok"
    assert (stats.attempts, stats.retries, stats.rate_limited) == (3, 2, 0)
    assert fn.calls[2] - fn.calls[0] == pytest.approx(stats.retry_wait_s, abs=1e-3)


async def test_permanent_failures_are_raised_at_once() -> None:
    fn = Flaky([status_error(400)])
    stats = CallStats()
    with pytest.raises(openai.APIStatusError):
        await CallExecutor().call(fn, stats=stats)
    assert stats.attempts == 1


async def test_bugs_are_not_retried() -> None:
    fn = Flaky([KeyError("oops")])
    with pytest.raises(KeyError):
        await CallExecutor().call(fn)
    assert len(fn.calls) == 1


async def test_gives_up_with_the_attempt_count() -> None:
    fn = Flaky([status_error(503) for _ in range(10)])
    with pytest.raises(RetriesExhaustedError, match="after 4 attempts: HTTP 503") as caught:
        await CallExecutor(retry_policy=RetryPolicy(max_attempts=4)).call(fn)
    assert caught.value.attempts == 4
    assert caught.value.status == 503


async def test_a_429_pauses_every_worker_until_retry_after() -> None:
    shared = limiter()
    executor = CallExecutor(limiter=shared)
    told_to_wait = Flaky([status_error(429, "rate_limit_exceeded", **{"retry-after": "2"})])
    others = [Flaky([]) for _ in range(5)]
    first = asyncio.create_task(executor.call(told_to_wait))
    await asyncio.sleep(0.1)  # the 429 has arrived and paused the limiter
    begun = asyncio.get_running_loop().time()
    await asyncio.gather(first, *(executor.call(fn) for fn in others))
    for fn in others:  # none started before the server's 2 s were over
        assert fn.calls[0] - begun >= 1.9 - 1e-9
    assert told_to_wait.calls[1] - told_to_wait.calls[0] == pytest.approx(2.0)


async def test_a_timed_out_attempt_is_retried() -> None:
    attempts = 0

    async def slow_then_fast() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(60)
        return "fast"

    executor = CallExecutor(attempt_timeout_s=5, rng=random.Random(0))
    assert await executor.call(slow_then_fast) == "fast"
    assert attempts == 2


@dataclass(frozen=True)
class Priced:
    tokens_used: int | None
    rate_limit: RateLimitHeaders


async def test_usage_and_headers_are_fed_back_to_the_limiter() -> None:
    shared = limiter()
    stats = CallStats()

    async def call() -> Priced:
        return Priced(40, RateLimitHeaders(remaining_requests=0, reset_requests_s=3.0))

    await CallExecutor(limiter=shared).call(call, tokens=100, stats=stats)
    status = shared.status()
    assert status.tokens_reserved == 40  # corrected from the estimate of 100
    assert stats.tokens_used == 40
    assert status.paused_for_s == pytest.approx(3.0)


async def test_a_final_429_still_pauses_everyone() -> None:
    shared = limiter()
    policy = RetryPolicy(max_attempts=1, max_adapting_retries=0)
    executor = CallExecutor(limiter=shared, retry_policy=policy)
    fn = Flaky([status_error(429, "rate_limit_exceeded", **{"retry-after": "4"})])
    with pytest.raises(RetriesExhaustedError):
        await executor.call(fn)
    assert shared.status().paused_for_s == pytest.approx(4.0)

"""The limiter contract (:class:`~embed2prompt.engine.limiter_base.RateLimiter`): the same
cases against the in-process limiter and the shared one on a real redis-server, so the
executor may hold either without asking which.

Limits are chosen so each case takes a fraction of a second of real time: the shared
limiter's clock is Redis's, which no fake clock reaches."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.limiter import OpenAIRateLimiter
from embed2prompt.engine.limiter_base import LimiterStatus, RateLimiter
from embed2prompt.engine.redis_limiter import RedisRateLimiter
from embed2prompt.engine.tiers import RateLimitTier
from embed2prompt.errors import ConfigurationError, RequestTooLargeError
from tests.test_redis_limiter import config  # loose limits, but for those a case sets

Make = Callable[..., RateLimiter]


@pytest.fixture(params=["in-process", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Builds limiters of one kind from ``config`` overrides (a fresh shared name each)."""
    made: list[RedisRateLimiter] = []
    # Redis only for the shared limiter's cases (conftest starts one for the session).
    redis_url: str | None = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")

    def build(**overrides: float) -> RateLimiter:
        if redis_url is None:
            return OpenAIRateLimiter(config(**overrides))
        limiter = RedisRateLimiter(config(**overrides), url=redis_url, name=uuid.uuid4().hex)
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        await limiter.aclose()


async def test_status_reports_the_configured_limits_and_nothing_used(make: Make) -> None:
    limiter = make(requests_per_minute=600, tokens_per_minute=5000, concurrent_requests=7)
    for status in (limiter.status(), await limiter.astatus()):
        assert isinstance(status, LimiterStatus)
        assert status.requests_per_minute.limit == pytest.approx(600)
        assert status.tokens_per_minute.limit == pytest.approx(5000)
        assert status.concurrent_limit == 7
        assert (status.in_flight, status.requests_started, status.server_pauses) == (0, 0, 0)


async def test_no_more_than_the_concurrency_limit_run_at_once(make: Make) -> None:
    limiter = make(concurrent_requests=2)
    running = peak = 0

    async def call() -> None:
        nonlocal running, peak
        async with limiter.acquire():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)  # the call's own duration, not a wait for behaviour
            running -= 1

    await asyncio.gather(*(call() for _ in range(8)))
    assert peak == 2
    status = await limiter.astatus()
    assert (status.in_flight, status.requests_started) == (0, 8)


async def test_a_failed_call_gives_its_slot_back(make: Make) -> None:
    limiter = make(concurrent_requests=1)
    with pytest.raises(RuntimeError, match="the call failed"):
        async with limiter.acquire():
            raise RuntimeError("the call failed")
    async with asyncio.timeout(5):  # the slot is free again: admitted at once
        async with limiter.acquire():
            assert (await limiter.astatus()).in_flight == 1
    assert (await limiter.astatus()).in_flight == 0


async def test_tokens_are_reserved_before_the_call_and_corrected_after(make: Make) -> None:
    # 100 tokens a minute, all of them at once: the bucket refills 1.7 a second, so the
    # bounds below hold however slowly a loaded machine runs the case (up to 6 s).
    limiter = make(tokens_per_minute=100, token_burst=100)
    async with limiter.acquire(tokens=100) as permit:
        assert permit.reserved_tokens == pytest.approx(100)
        status = await limiter.astatus()
        assert status.tokens_per_minute.available_now < 10
        permit.record_usage(40)  # it used less than estimated: 60 come back
    status = await limiter.astatus()
    assert 60 - 1 <= status.tokens_per_minute.available_now < 70
    assert status.tokens_reserved == pytest.approx(40)
    async with limiter.acquire(tokens=50) as permit:
        permit.refund()  # a 429: it used nothing
    assert (await limiter.astatus()).tokens_reserved == pytest.approx(40)


async def test_a_pause_holds_back_the_next_call(make: Make) -> None:
    limiter = make()
    limiter.pause_for(0.5)
    # The shared limiter sends the pause to Redis in the background (pause_for is not
    # async): the contract is that calls admitted once it is recorded wait it out.
    for _ in range(500):  # polling Redis for at most 5 s: no fake clock reaches its clock
        status = await limiter.astatus()
        if status.server_pauses:
            break
        await asyncio.sleep(0.01)
    assert status.server_pauses == 1
    assert 0 <= status.paused_for_s <= 0.5
    started = time.monotonic()
    async with limiter.acquire():
        waited = time.monotonic() - started
    assert waited >= status.paused_for_s - 0.05  # what was left of the pause, at least


async def test_headers_with_nothing_left_tighten_the_limit(make: Make) -> None:
    limiter = make(requests_per_minute=6000)
    async with limiter.acquire() as permit:
        # 600 a minute, none left: the next call is a tenth of a second away.
        permit.observe_headers(RateLimitHeaders(limit_requests=600, remaining_requests=0))
    started = time.monotonic()
    async with limiter.acquire():
        waited = time.monotonic() - started
    status = await limiter.astatus()
    assert status.requests_per_minute.limit == pytest.approx(600)
    assert status.header_tightenings >= 1
    assert waited >= 0.08


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "ten", True])
async def test_bad_token_estimates_are_refused(make: Make, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="tokens must be"):
        make().acquire(tokens=bad)  # type: ignore[arg-type]


async def test_a_call_no_limit_could_admit_is_refused_at_once(make: Make) -> None:
    with pytest.raises(RequestTooLargeError, match="can never fit"):
        make(tokens_per_minute=100).acquire(tokens=1000)


def test_a_tier_is_taken_and_anything_else_refused(redis_url: str) -> None:
    for build in (OpenAIRateLimiter, lambda c: RedisRateLimiter(c, url=redis_url)):
        assert build(RateLimitTier.TIER_1).config == RateLimitTier.TIER_1.config
        with pytest.raises(ConfigurationError, match="RateLimitConfig or RateLimitTier"):
            build("tier_9")

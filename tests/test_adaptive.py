"""Learning a lower server limit from 429s without limit headers.

The contract cases run against both limiters, the in-process one and the shared one in a
real redis-server, on the same fake clock: both must lower, hold and raise their rates
the same way. Then the executor's retry budget, and whole runs against a server whose
sliding window counts rejected requests, on looptime's fake event-loop clock.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from embed2prompt import ConfigurationError, RetriesExhaustedError
from embed2prompt.engine import (
    AsyncEmbeddingProcessor,
    CallExecutor,
    CallStats,
    LimiterStatus,
    OpenAIRateLimiter,
    RateLimitConfig,
    RateLimitHeaders,
    RetryPolicy,
)
from embed2prompt.engine.adaptive import AdaptivePolicy, AdaptiveRate, RateChange
from embed2prompt.engine.limiter import RateLimiter
from embed2prompt.engine.redis_limiter import RedisPermit, RedisRateLimiter

POLICY = AdaptivePolicy()  # the defaults: the contract holds for what users get
LIMITS = RateLimitConfig(
    requests_per_minute=600,
    requests_per_day=1e9,
    tokens_per_minute=60_000,
    tokens_per_day=1e12,
    concurrent_requests=1000,
)
NO_HEADERS = RateLimitHeaders()


class Harness:
    """One limiter on a fake clock, driven one call at a time."""

    def __init__(self, limiter: OpenAIRateLimiter | RedisRateLimiter, clock: list[float]):
        self.limiter = limiter
        self.clock = clock
        self._leases: dict[int, str] = {}  # the shared limiter's permits: their leases

    async def start(self, tokens: float = 0.0) -> Any:
        """Admit one call, moving the clock on by each wait; its slot is freed at once."""
        limiter = self.limiter
        if isinstance(limiter, OpenAIRateLimiter):
            while (delay := limiter._delay(tokens, self.clock[0])) > 0:
                self.clock[0] += delay
            acquisition = limiter.acquire(tokens)
            permit = await acquisition.__aenter__()
            await acquisition.__aexit__(None, None, None)
            return permit
        for _ in range(1000):
            lease = uuid.uuid4().hex
            admitted = await limiter._try_admit(tokens, lease)
            if isinstance(admitted, RedisPermit):
                await limiter._release(lease)
                self._leases[id(admitted)] = lease
                return admitted
            assert admitted > 0, "asked to wait for a free slot among 1000"
            self.clock[0] += admitted
        raise AssertionError("never admitted")

    async def succeed(self, permit: Any) -> None:
        permit.succeeded()
        await self._flush(permit)
        if isinstance(self.limiter, RedisRateLimiter):
            # The shared limiter counts a success when the call's slot is given back
            # (giving it back twice frees nothing twice).
            await self.limiter._release(self._leases.pop(id(permit)), succeeded=True)

    async def accepted_for_a_minute(self) -> None:
        """A minute of calls at the full limit, all of them answered."""
        for _ in range(LIMITS.requests_per_minute):
            await self.succeed(await self.start())

    async def observe(self, headers: RateLimitHeaders) -> None:
        if isinstance(self.limiter, OpenAIRateLimiter):
            self.limiter.observe_headers(headers)
        else:
            await self.limiter.aobserve_headers(headers)

    async def status(self) -> LimiterStatus:
        return await self.limiter.astatus()

    @staticmethod
    async def _flush(permit: Any) -> None:
        for update in getattr(permit, "_pending", []):  # the shared limiter's queued updates
            await update
        getattr(permit, "_pending", []).clear()


@pytest.fixture(params=["in-process", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    clock = [1_000_000.0]
    if request.param == "in-process":
        yield Harness(OpenAIRateLimiter(LIMITS, clock=lambda: clock[0], adaptive=POLICY), clock)
        return
    redis_url = request.getfixturevalue("redis_url")
    limiter = RedisRateLimiter(
        LIMITS, url=redis_url, name=uuid.uuid4().hex, clock=lambda: clock[0], adaptive=POLICY
    )
    yield Harness(limiter, clock)
    await limiter.aclose()


# ---------------------------------------------------------------------------- the contract


async def test_a_429_without_headers_lowers_request_and_token_rates(harness: Harness) -> None:
    permit = await harness.start()
    assert await permit.rate_limited(NO_HEADERS) is True
    status = await harness.status()
    assert status.rate_share == pytest.approx(0.7)
    assert status.requests_per_minute.limit == pytest.approx(420, rel=1e-5)
    assert status.tokens_per_minute.limit == pytest.approx(42_000, rel=1e-5)
    assert (status.rate_reason, status.rate_decreases) == (RateChange.REJECTED, 1)
    # Calls now start at the lowered pace: once the burst (at most a second's worth of
    # the lowered rate) is spent, one every 60/420 s.
    starts = []
    for _ in range(30):
        await harness.start()
        starts.append(harness.clock[0])
    gaps = [b - a for a, b in itertools.pairwise(starts[15:])]
    assert gaps == pytest.approx([60 / 420] * len(gaps), abs=2e-6)


async def test_a_burst_of_429s_from_calls_admitted_together_lowers_the_rate_once(
    harness: Harness,
) -> None:
    together = [await harness.start() for _ in range(5)]
    assert [await permit.rate_limited(NO_HEADERS) for permit in together] == [True] * 5
    assert (await harness.status()).rate_share == pytest.approx(0.7)
    later = await harness.start()  # admitted at the lowered rate, and still refused
    assert await later.rate_limited(NO_HEADERS) is True
    status = await harness.status()
    assert status.rate_share == pytest.approx(0.49)
    assert status.rate_decreases == 2


async def test_the_rate_never_falls_below_the_floor(harness: Harness) -> None:
    blamed = []
    for _ in range(15):
        permit = await harness.start()
        blamed.append(await permit.rate_limited(NO_HEADERS))
        assert (await harness.status()).rate_share >= POLICY.floor
    status = await harness.status()
    assert status.rate_share == pytest.approx(POLICY.floor)
    assert status.requests_per_minute.limit == pytest.approx(600 * POLICY.floor, rel=1e-5)
    # 0.7 ** 9 < 0.05: nine decreases reach the floor; at the floor a 429 is the call's own.
    assert blamed == [True] * 9 + [False] * 6


async def test_a_window_of_successes_restores_the_rate_the_server_accepted(
    harness: Harness,
) -> None:
    await harness.accepted_for_a_minute()  # the server took the full 600 in a minute
    await (await harness.start()).rate_limited(NO_HEADERS)
    await (await harness.start()).rate_limited(NO_HEADERS)  # still refused: share 0.49
    assert (await harness.status()).rate_share == pytest.approx(0.49)
    # A window is as many successes as the lowered rate admits in window_s: 294 * 2 / 60.
    for _ in range(9):
        await harness.succeed(await harness.start())
    assert (await harness.status()).rate_share == pytest.approx(0.49)
    await harness.succeed(await harness.start())
    status = await harness.status()
    assert status.rate_share == pytest.approx(1.0)
    assert status.rate_reason == RateChange.PROBING
    assert status.requests_per_minute.limit == pytest.approx(600)
    assert status.tokens_per_minute.limit == pytest.approx(60_000)


async def test_the_rate_is_restored_only_to_what_the_server_accepted(harness: Harness) -> None:
    for _ in range(300):  # half the limit in the trailing minute
        await harness.succeed(await harness.start())
    harness.clock[0] += 30
    await (await harness.start()).rate_limited(NO_HEADERS)
    await (await harness.start()).rate_limited(NO_HEADERS)
    await (await harness.start()).rate_limited(NO_HEADERS)  # share 0.343
    for _ in range(7):  # a window at 0.343 of 600 a minute: 6.86 successes
        await harness.succeed(await harness.start())
    assert (await harness.status()).rate_share == pytest.approx(0.5)


async def test_beyond_what_the_server_accepted_the_rate_climbs_a_step_per_minute(
    harness: Harness,
) -> None:
    await (await harness.start()).rate_limited(NO_HEADERS)  # nothing accepted before
    # A probe window is as many successes as the lowered rate admits in a minute: 420.
    for _ in range(419):
        await harness.succeed(await harness.start())
    assert (await harness.status()).rate_share == pytest.approx(0.7)
    await harness.succeed(await harness.start())
    status = await harness.status()
    assert status.rate_share == pytest.approx(0.75)
    assert status.rate_reason == RateChange.PROBING
    assert status.requests_per_minute.limit == pytest.approx(450, rel=1e-5)
    shares = []
    for _ in range(60):  # 0.75 to 1 takes 450 + 480 + 510 + 540 + 570 successes
        for _ in range(50):
            await harness.succeed(await harness.start())
        shares.append((await harness.status()).rate_share)
    assert shares == sorted(shares)  # only up
    assert shares[-1] == 1.0  # all the way back, and never beyond
    assert shares[-15] < 1.0  # and not sooner than a step a minute
    status = await harness.status()
    assert status.requests_per_minute.limit == pytest.approx(600)
    assert status.tokens_per_minute.limit == pytest.approx(60_000)


async def test_successes_of_calls_admitted_before_a_decrease_do_not_raise_it(
    harness: Harness,
) -> None:
    before = [await harness.start() for _ in range(40)]
    await (await harness.start()).rate_limited(NO_HEADERS)
    for permit in before:
        await harness.succeed(permit)
    assert (await harness.status()).rate_share == pytest.approx(0.7)


async def test_a_429_with_limit_headers_is_left_to_the_headers(harness: Harness) -> None:
    permit = await harness.start()
    headers = RateLimitHeaders(limit_requests=300, remaining_requests=0)
    await harness.observe(headers)
    assert await permit.rate_limited(headers) is False
    status = await harness.status()
    assert (status.rate_share, status.rate_decreases) == (1.0, 0)
    assert status.rate_reason == RateChange.LIMIT_HEADERS
    assert status.requests_per_minute.limit == pytest.approx(300, rel=1e-5)


async def test_the_share_applies_to_a_limit_learned_from_headers(harness: Harness) -> None:
    await harness.observe(RateLimitHeaders(limit_requests=300))
    await (await harness.start()).rate_limited(NO_HEADERS)
    status = await harness.status()
    assert status.requests_per_minute.limit == pytest.approx(210, rel=1e-5)
    assert status.tokens_per_minute.limit == pytest.approx(42_000, rel=1e-5)


async def test_every_process_sharing_a_limit_adapts_together(redis_url: str) -> None:
    name = uuid.uuid4().hex
    first, second = (RedisRateLimiter(LIMITS, url=redis_url, name=name) for _ in range(2))
    async with first.acquire() as permit:
        assert await permit.rate_limited(NO_HEADERS) is True
    status = await second.astatus()
    assert status.rate_share == pytest.approx(0.7)
    assert status.requests_per_minute.limit == pytest.approx(420, rel=1e-5)
    # The other process's calls in flight were admitted at the old rate: their 429s are
    # blamed on the limiter, and do not lower it again.
    assert await second._rejected(generation=0) is True
    assert (await first.astatus()).rate_decreases == 1
    for limiter in (first, second):
        await limiter.aclose()


async def test_both_limiters_report_through_one_status_interface(harness: Harness) -> None:
    limiter: RateLimiter = harness.limiter
    assert limiter.status().rate_share == 1.0
    await (await harness.start()).rate_limited(NO_HEADERS)
    await harness.start()  # admitted at the lowered rate: this process now knows it
    # status() answers at once from what this process knows; astatus() has every figure.
    assert limiter.status().rate_share == pytest.approx(0.7)
    full = await limiter.astatus()
    assert (full.rate_share, full.rate_decreases, full.requests_started) == (
        pytest.approx(0.7),
        1,
        2,
    )
    known = limiter.status()  # the shared limiter: as of that astatus()
    assert (known.rate_decreases, known.requests_started) == (1, 2)
    assert known.requests_per_minute.limit == pytest.approx(420, rel=1e-5)


# ---------------------------------------------------------------------------- the policy


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decrease_factor": 1.0},
        {"increase_step": 0},
        {"floor": 1.5},
        {"window_s": 0},
        {"probe_window_s": float("inf")},
    ],
)
def test_the_policy_refuses_values_that_would_not_adapt(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        AdaptivePolicy(**kwargs)


def test_a_window_of_successes_is_the_effective_rate_times_its_length() -> None:
    policy = AdaptivePolicy(window_s=2.0, probe_window_s=60.0)
    assert policy.successes_per_increase(0.5, 600) == pytest.approx(10)
    assert policy.successes_per_increase(0.5, 600, recovering=False) == pytest.approx(300)
    assert policy.successes_per_increase(0.05, 6) == 1  # at least one call


def test_adaptive_rate_rules_alone() -> None:
    policy = AdaptivePolicy(decrease_factor=0.5, increase_step=0.25, floor=0.2)
    rate = AdaptiveRate(policy)
    assert rate.rejected(generation=0, accepted_share=0.9)
    assert (rate.share, rate.recover_to, rate.generation) == (0.5, 0.9, 1)
    assert rate.rejected(generation=0)  # stale: blamed, not lowered again
    assert (rate.share, rate.generation) == (0.5, 1)
    assert not rate.succeeded(generation=0, limit_per_minute=60)  # stale success
    assert rate.succeeded(generation=1, limit_per_minute=60)  # a window of max(1, 1)
    assert rate.share == 0.9  # back to what the server accepted, at once
    # Beyond it, a window of probe_window_s: 0.9 * 60 successes a minute.
    assert not any(rate.succeeded(generation=1, limit_per_minute=60) for _ in range(53))
    assert rate.succeeded(generation=1, limit_per_minute=60)
    assert rate.share == 1.0  # 0.9 + 0.25, capped
    assert rate.rejected(generation=1, accepted_share=0.0)
    assert (rate.share, rate.recover_to) == (0.5, 0.5)  # nothing accepted to return to
    assert rate.rejected(generation=2)
    assert rate.share == 0.25
    assert rate.rejected(generation=3)
    assert rate.share == 0.2  # floored
    assert not rate.rejected(generation=4)  # at the floor: the call's own failure


# ---------------------------------------------------------------------------- the budget

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/embeddings")


def too_many(**headers: str) -> openai.RateLimitError:
    """OpenAI's 429 for a rate limit, by default as servers without limit headers send it."""
    body = {
        "error": {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    response = httpx2.Response(
        429, request=REQUEST, headers=headers or {"retry-after": "1"}, json=body
    )
    return openai.RateLimitError("Rate limit reached", response=response, body=body)


def refused_then_ok(refusals: int) -> Any:
    remaining = [refusals]

    async def call() -> str:
        if remaining[0]:
            remaining[0] -= 1
            raise too_many()
        return "ok"

    return call


@pytest.mark.looptime
async def test_429s_while_the_limiter_adapts_do_not_spend_the_retry_budget() -> None:
    limiter = OpenAIRateLimiter(LIMITS)
    executor = CallExecutor(limiter=limiter, retry_policy=RetryPolicy(max_attempts=2))
    stats = CallStats()
    assert await executor.call(refused_then_ok(4), stats=stats) == "ok"
    # Each attempt was admitted at a rate the 429 then lowered: the limiter's error.
    assert (stats.attempts, stats.rate_limited, stats.adapting_retries) == (5, 4, 4)
    assert limiter.status().rate_decreases == 4


@pytest.mark.looptime
async def test_without_free_retries_the_same_storm_loses_the_call() -> None:
    policy = RetryPolicy(max_attempts=2, max_adapting_retries=0)
    executor = CallExecutor(limiter=OpenAIRateLimiter(LIMITS), retry_policy=policy)
    with pytest.raises(RetriesExhaustedError, match="after 2 attempts"):
        await executor.call(refused_then_ok(4))


@pytest.mark.looptime
async def test_429s_at_the_floor_are_the_calls_own_failures() -> None:
    # One decrease reaches the floor: the first 429 is free, the next ones count.
    adaptive = AdaptivePolicy(decrease_factor=0.5, floor=0.5)
    limiter = OpenAIRateLimiter(LIMITS, adaptive=adaptive)
    executor = CallExecutor(limiter=limiter, retry_policy=RetryPolicy(max_attempts=2))
    stats = CallStats()
    with pytest.raises(RetriesExhaustedError) as raised:
        await executor.call(refused_then_ok(10), stats=stats)
    assert raised.value.attempts == 3
    assert stats.adapting_retries == 1


@pytest.mark.looptime
async def test_a_429_with_limit_headers_spends_the_budget_as_before() -> None:
    executor = CallExecutor(
        limiter=OpenAIRateLimiter(LIMITS), retry_policy=RetryPolicy(max_attempts=2)
    )
    headers = {"retry-after": "1", "x-ratelimit-limit-requests": "600"}
    calls = [too_many(**headers), too_many(**headers)]

    async def call() -> str:
        raise calls.pop(0)

    with pytest.raises(RetriesExhaustedError, match="after 2 attempts"):
        await executor.call(call)


# ---------------------------------------------------------------------------- whole runs


class SlidingWindowServer:
    """A server allowing ``limit`` requests in any 60 s, counting the ones it refuses,
    answering 429 with ``retry-after: 1`` and no limit headers, 200 ms per success."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window: collections.deque[float] = collections.deque()
        self.log: list[tuple[float, bool]] = []  # (time, answered)

    async def __call__(self, _item: int) -> int:
        now = asyncio.get_running_loop().time()
        while self.window and self.window[0] <= now - 60:
            self.window.popleft()
        refused = len(self.window) >= self.limit
        self.window.append(now)
        self.log.append((now, not refused))
        if refused:
            raise too_many()
        await asyncio.sleep(0.2)
        return 1


@pytest.mark.looptime
@pytest.mark.parametrize(("told", "limit", "items", "least_share", "most_429s"), [
    (600, 600, 1200, 0.98, 0.02),  # told right: unchanged
    (900, 600, 1200, 0.95, 0.02),  # issue 18's targets
    (1200, 600, 1200, 0.95, 0.02),
    (600, 300, 400, 0.90, 0.05),
])  # fmt: skip
async def test_a_client_told_too_high_a_limit_learns_the_real_one(
    told: int, limit: int, items: int, least_share: float, most_429s: float
) -> None:
    server = SlidingWindowServer(limit)
    config = RateLimitConfig(
        requests_per_minute=told,
        requests_per_day=1e9,
        tokens_per_minute=1e9,
        tokens_per_day=1e12,
        concurrent_requests=50,
    )
    processor = AsyncEmbeddingProcessor(
        limiter=OpenAIRateLimiter(config), retry_policy=RetryPolicy(), max_concurrent=50
    )
    begun = asyncio.get_running_loop().time()
    report = await processor.run(server, range(items))
    wall = asyncio.get_running_loop().time() - begun
    after_first_minute = [answered for t, answered in server.log if t - begun >= 60]
    refused_share = after_first_minute.count(False) / len(after_first_minute)
    assert report.metrics.failed == 0
    assert refused_share <= most_429s
    assert items / (limit / 60 * wall) >= least_share  # the share of the real limit used
    assert max(result.attempts for result in report.results) <= 3

"""OpenAIRateLimiter on a fake event-loop clock (looptime): no test sleeps for real."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from embed2prompt import ConfigurationError, RequestTooLargeError
from embed2prompt.engine import OpenAIRateLimiter, RateLimitConfig, RateLimitHeaders

pytestmark = pytest.mark.looptime


def config(**overrides: float) -> RateLimitConfig:
    values: dict[str, float] = {
        "requests_per_minute": 600,
        "requests_per_day": 1_000_000,
        "tokens_per_minute": 1_000_000,
        "tokens_per_day": 100_000_000,
        "concurrent_requests": 1000,
    }
    values.update(overrides)
    return RateLimitConfig(**values)  # type: ignore[arg-type]


def now() -> float:
    return asyncio.get_running_loop().time()


async def start_times(
    limiter: OpenAIRateLimiter, count: int, *, tokens: float = 0, hold: float = 0.0
) -> list[float]:
    """Start ``count`` calls at once; return when each was admitted, in admission order."""
    starts: list[float] = []

    async def call() -> None:
        async with limiter.acquire(tokens=tokens):
            starts.append(now())
            await asyncio.sleep(hold)

    await asyncio.gather(*(call() for _ in range(count)))
    return starts


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(times):
        while times[left] < t - window + 1e-9:
            left += 1
        best = max(best, right - left + 1)
    return best


async def test_requests_are_paced_not_burst() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=600))  # 10/s, burst 10
    starts = await start_times(limiter, 100)
    assert starts[9] == pytest.approx(starts[0])  # the burst of 10 starts at once
    assert starts[10] == pytest.approx(starts[0] + 0.1)  # then one every 100 ms
    assert starts[-1] == pytest.approx(starts[0] + 9.0)
    for window in (0.5, 1.0, 3.0, 7.0):
        assert max_in_any_window(starts, window) <= 600 * window / 60 + 10


async def test_burst_is_configurable() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=600, request_burst=1))
    starts = await start_times(limiter, 5)
    assert [round(t - starts[0], 6) for t in starts] == [0.0, 0.1, 0.2, 0.3, 0.4]


async def test_concurrency_limit_holds_and_frees() -> None:
    limiter = OpenAIRateLimiter(config(concurrent_requests=3, requests_per_minute=1e6))
    in_flight = peak = 0

    async def call() -> None:
        nonlocal in_flight, peak
        async with limiter.acquire():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(1.0)
            in_flight -= 1

    started = now()
    await asyncio.gather(*(call() for _ in range(9)))
    assert peak == 3
    assert now() - started == pytest.approx(3.0)
    assert limiter.status().in_flight == 0


async def test_tokens_are_reserved_before_the_call() -> None:
    # 6,000 TPM = 100 tokens/s with a burst of 100: ten concurrent 100-token calls cannot
    # all start at once even though no call has reported usage yet.
    limiter = OpenAIRateLimiter(config(tokens_per_minute=6_000, requests_per_minute=1e6))
    starts = await start_times(limiter, 10, tokens=100, hold=30.0)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0] * 9
    for window in (1.0, 2.5, 5.0):
        tokens_started = 100 * max_in_any_window(starts, window)
        assert tokens_started <= 6_000 * window / 60 + 100


async def test_record_usage_refunds_an_overestimate() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=6_000, requests_per_minute=1e6))
    async with limiter.acquire(tokens=100) as permit:
        permit.record_usage(10)  # used far less than reserved
    started = now()
    async with limiter.acquire(tokens=90):
        pass
    assert now() == pytest.approx(started)  # the refund made room at once


async def test_record_usage_charges_an_underestimate() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=6_000, requests_per_minute=1e6))
    async with limiter.acquire(tokens=10) as permit:
        permit.record_usage(100)
    started = now()
    async with limiter.acquire(tokens=100):
        pass
    assert now() - started == pytest.approx(1.0)
    assert limiter.status().tokens_reserved == pytest.approx(200)


async def test_day_limit_spends_its_budget_then_paces() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_day=5, requests_per_minute=1e6))
    starts = await start_times(limiter, 6)
    assert starts[4] == pytest.approx(starts[0])
    assert starts[5] - starts[0] == pytest.approx(86_400 / 5)


async def test_first_come_first_served_large_call_is_not_starved() -> None:
    limiter = OpenAIRateLimiter(
        config(tokens_per_minute=6_000, requests_per_minute=1e6, token_burst=100)
    )
    order: list[str] = []

    async def call(name: str, tokens: float) -> None:
        async with limiter.acquire(tokens=tokens):
            order.append(name)

    async with limiter.acquire(tokens=100):  # empties the token bucket
        pass
    tasks = [asyncio.create_task(call("big", 100))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(call(f"small{i}", 10)) for i in range(3)]
    await asyncio.gather(*tasks)
    assert order == ["big", "small0", "small1", "small2"]


async def test_cancelled_waiters_leak_nothing() -> None:
    limiter = OpenAIRateLimiter(config(concurrent_requests=1, requests_per_minute=1e6))
    holder_entered = asyncio.Event()

    async def holder() -> None:
        async with limiter.acquire():
            holder_entered.set()
            await asyncio.sleep(10)

    async def waiter() -> None:
        async with limiter.acquire():
            await asyncio.sleep(1)

    hold = asyncio.create_task(holder())
    await holder_entered.wait()
    waiters = [asyncio.create_task(waiter()) for _ in range(5)]
    await asyncio.sleep(1)
    for task in waiters[:3]:
        task.cancel()
    hold.cancel()  # cancelled inside the context: its slot must come back
    await asyncio.gather(hold, *waiters, return_exceptions=True)
    status = limiter.status()
    assert status.in_flight == 0
    assert status.waiting == 0
    assert [task.cancelled() for task in waiters] == [True, True, True, False, False]


async def test_failed_call_releases_its_slot() -> None:
    limiter = OpenAIRateLimiter(config(concurrent_requests=1))
    with pytest.raises(RuntimeError):
        async with limiter.acquire():
            raise RuntimeError("the call failed")
    started = now()
    async with limiter.acquire():
        pass
    assert now() == pytest.approx(started)


async def test_pause_for_stops_everyone() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=1e6))
    limiter.pause_for(5.0)
    starts = await start_times(limiter, 4)
    assert min(starts) == pytest.approx(5.0, abs=1e-6) or min(starts) >= 5.0
    assert limiter.status().server_pauses == 1


async def test_pause_extends_while_waiting() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=1e6))
    limiter.pause_for(1.0)
    begun = now()
    task = asyncio.create_task(start_times(limiter, 1))
    await asyncio.sleep(0.5)
    limiter.pause_for(2.0)  # now paused until begun + 2.5
    starts = await task
    assert starts[0] - begun == pytest.approx(2.5)


async def test_headers_with_nothing_left_pause_until_reset() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=1e6))
    begun = now()
    limiter.observe_headers(
        RateLimitHeaders.from_headers(
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
        )
    )
    starts = await start_times(limiter, 1)
    assert starts[0] - begun == pytest.approx(1.5)


async def test_headers_tighten_but_never_loosen() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=600, request_burst=10))
    limiter.observe_headers(RateLimitHeaders(remaining_requests=2))
    starts = await start_times(limiter, 4)
    assert [round(t - starts[0], 6) for t in starts] == [0.0, 0.0, 0.1, 0.2]
    assert limiter.status().header_tightenings == 1
    limiter.observe_headers(RateLimitHeaders(remaining_requests=10_000))
    assert limiter.status().requests_per_minute.available_now <= 10


async def test_call_larger_than_any_limit_is_refused_at_once() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=1_000))
    with pytest.raises(RequestTooLargeError, match="1000 tokens per minute"):
        limiter.acquire(tokens=5_000)


async def test_call_larger_than_the_burst_waits_for_a_full_bucket() -> None:
    limiter = OpenAIRateLimiter(
        config(tokens_per_minute=6_000, token_burst=100, requests_per_minute=1e6)
    )
    starts = await start_times(limiter, 2, tokens=300)
    # The first drains the full bucket into debt (200 over); the second waits for the
    # debt and a full bucket again: 300 tokens at 100/s.
    assert starts[1] - starts[0] == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "ten", True])
async def test_bad_token_estimates_are_refused(bad: object) -> None:
    limiter = OpenAIRateLimiter(config())
    with pytest.raises(ConfigurationError, match="tokens must be"):
        limiter.acquire(tokens=bad)  # type: ignore[arg-type]


async def test_status_reports_usage_against_each_limit() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=600, tokens_per_minute=60_000))
    await start_times(limiter, 20, tokens=50)
    status = limiter.status()
    assert status.requests_started == 20
    assert status.requests_per_minute.used_last_window == 20
    assert status.requests_per_minute.limit == 600
    assert status.tokens_per_minute.used_last_window == 1000
    assert status.requests_per_day.used_last_window == 20
    assert status.wait_time_s > 0  # ten of them waited for the pace
    await asyncio.sleep(61)
    assert limiter.status().requests_per_minute.used_last_window == 0


def test_rejects_what_is_not_a_config() -> None:
    with pytest.raises(ConfigurationError, match="RateLimitConfig or RateLimitTier"):
        OpenAIRateLimiter({"requests_per_minute": 3})  # type: ignore[arg-type]


async def test_usage_reported_after_a_zero_estimate_is_charged() -> None:
    # 600 TPM = 10 tokens/s, burst 10; each call reserves nothing but uses 10 tokens.
    limiter = OpenAIRateLimiter(config(tokens_per_minute=600, requests_per_minute=1e6))
    starts = []
    for _ in range(6):
        async with limiter.acquire(tokens=0) as permit:
            starts.append(now())
            permit.record_usage(10)
    # The first call reserves nothing; once its usage is known, later calls reserve the
    # mean (10). 60 tokens may start within T seconds only if 10 + 10*T >= 60.
    assert starts[-1] - starts[0] == pytest.approx(5.0)


async def test_a_zero_token_call_waits_while_tokens_are_in_debt() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=600, requests_per_minute=1e6))
    async with limiter.acquire(tokens=600):  # far beyond the burst of 10: 59 s of debt
        pass
    begun = now()
    async with limiter.acquire(tokens=0):
        pass
    assert now() - begun == pytest.approx(59.0)


async def test_nothing_left_with_a_known_limit_waits_one_refill_not_the_reset() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=600))
    limiter.observe_headers(
        RateLimitHeaders(limit_requests=600, remaining_requests=0, reset_requests_s=59.0)
    )
    begun = now()
    async with limiter.acquire():
        pass
    assert now() - begun == pytest.approx(0.1)  # the next request refills in 60/600 s


async def test_a_lower_limit_reported_by_the_server_is_adopted() -> None:
    limiter = OpenAIRateLimiter(config(requests_per_minute=60_000))  # the wrong tier
    limiter.observe_headers(RateLimitHeaders(limit_requests=600, remaining_requests=3))
    starts = await start_times(limiter, 6)
    assert [round(t - starts[0], 6) for t in starts] == [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]
    assert limiter.status().requests_per_minute.limit == pytest.approx(600)
    limiter.observe_headers(RateLimitHeaders(limit_requests=100_000))  # never loosened
    assert limiter.status().requests_per_minute.limit == pytest.approx(600)


@pytest.mark.parametrize("seed", range(20))
async def test_random_workloads_keep_every_invariant(seed: int) -> None:
    """Random arrivals, costs, failures, cancellations and pauses: everything finishes,
    nothing leaks, admission is first come first served, concurrency holds."""
    import random

    rng = random.Random(seed)
    limiter = OpenAIRateLimiter(
        config(requests_per_minute=600, tokens_per_minute=6000, concurrent_requests=3)
    )
    admitted: list[int] = []
    peak = 0

    async def call(number: int, tokens: int) -> None:
        nonlocal peak
        async with limiter.acquire(tokens=tokens) as permit:
            admitted.append(number)
            peak = max(peak, limiter.status().in_flight)
            await asyncio.sleep(rng.random())
            if rng.random() < 0.3:
                raise ValueError("the call failed")
            permit.record_usage(tokens * rng.random())

    tasks = []
    for number in range(150):
        tasks.append(asyncio.create_task(call(number, rng.choice([0, 10, 100, 500]))))
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.2)
        if rng.random() < 0.2:
            rng.choice(tasks).cancel()
        if rng.random() < 0.05:
            limiter.pause_for(rng.random())
    await asyncio.gather(*tasks, return_exceptions=True)
    status = limiter.status()
    assert (status.in_flight, status.waiting) == (0, 0)
    assert peak <= 3
    assert admitted == sorted(admitted)


async def test_unestimated_calls_reserve_the_mean_usage_once_known() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=6_000, requests_per_minute=1e6))
    async with limiter.acquire(tokens=0) as first:
        assert first.reserved_tokens == 0  # nothing known yet
        first.record_usage(100)
    async with limiter.acquire(tokens=0) as second:
        assert second.reserved_tokens == pytest.approx(100)
    async with limiter.acquire(tokens=30) as estimated:
        assert estimated.reserved_tokens == 30  # an estimate always wins


async def test_a_refused_call_gets_its_tokens_back() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=6_000, requests_per_minute=1e6))
    async with limiter.acquire(tokens=100) as permit:
        permit.refund()
    assert limiter.status().tokens_reserved == 0
    begun = now()
    async with limiter.acquire(tokens=100):
        pass
    assert now() == pytest.approx(begun)


async def test_adopting_a_lower_limit_keeps_the_debt() -> None:
    limiter = OpenAIRateLimiter(config(tokens_per_minute=60_000, requests_per_minute=1e6))
    async with limiter.acquire(tokens=50_000):  # 49,000 beyond the burst of 1,000
        pass
    limiter.observe_headers(RateLimitHeaders(limit_tokens=6_000))  # 100 tokens/s
    begun = now()
    async with limiter.acquire(tokens=100):
        pass
    assert now() - begun > 40  # the debt still has to be paid, at the lower rate

"""The shared rate limiter against a real redis-server: several limiters on one name act
as one limit, as processes on several machines would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import example, given, settings

from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.redis_limiter import RedisRateLimiter
from embed2prompt.engine.tiers import RateLimitConfig
from embed2prompt.errors import ConfigurationError, LimiterUnavailableError, RequestTooLargeError
from embed2prompt.testing import OpenAITestServer, ServerConfig
from tests.pacing import BURSTS, RATES, assert_paced, schedules


def config(**overrides: float) -> RateLimitConfig:
    values: dict[str, float] = {
        "requests_per_minute": 1e6,
        "requests_per_day": 1e9,
        "tokens_per_minute": 1e9,
        "tokens_per_day": 1e12,
        "concurrent_requests": 1000,
    }
    values.update(overrides)
    return RateLimitConfig(**values)  # type: ignore[arg-type]


def limiters(redis_url: str, count: int, **overrides: float) -> list[RedisRateLimiter]:
    """``count`` limiters sharing one fresh name: stand-ins for separate processes."""
    name = uuid.uuid4().hex
    return [RedisRateLimiter(config(**overrides), url=redis_url, name=name) for _ in range(count)]


async def close(*items: RedisRateLimiter) -> None:
    for limiter in items:
        await limiter.aclose()


async def test_two_limiters_on_one_name_keep_one_rpm_between_them(redis_url: str) -> None:
    first, second = limiters(redis_url, 2, requests_per_minute=1200)  # 20/s, burst 20
    admitted: list[float] = []

    async def call(limiter: RedisRateLimiter) -> None:
        async with limiter.acquire():
            admitted.append(time.monotonic())

    await asyncio.gather(*(call(first) for _ in range(30)), *(call(second) for _ in range(30)))
    admitted.sort()
    # In any span of T seconds at most 20 * T + 20 calls start (the GCRA bound); the
    # clocks differ by Redis's and ours, so allow 20 ms.
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert j - i + 1 <= 20 * (span + 0.02) + 20
    assert admitted[-1] - admitted[0] >= (60 - 20) / 20 - 0.05
    await close(first, second)


async def test_calls_in_flight_are_counted_across_limiters(redis_url: str) -> None:
    first, second = limiters(redis_url, 2, concurrent_requests=3)
    in_flight = peak = 0

    async def call(limiter: RedisRateLimiter) -> None:
        nonlocal in_flight, peak
        async with limiter.acquire():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)  # the call's own duration, not a wait for behaviour
            in_flight -= 1

    await asyncio.gather(*(call(first) for _ in range(10)), *(call(second) for _ in range(10)))
    assert peak == 3
    status = await first.astatus()
    assert (status.in_flight, status.requests_started) == (0, 20)
    await close(first, second)


async def test_tokens_are_reserved_before_and_corrected_after(redis_url: str) -> None:
    first, second = limiters(redis_url, 2, tokens_per_minute=6000, token_burst=100)
    async with first.acquire(tokens=100) as permit:
        status = await second.astatus()
        assert status.tokens_per_minute.available_now == pytest.approx(0, abs=2)
        permit.record_usage(40)  # it used less: 60 come back
    status = await second.astatus()
    assert status.tokens_per_minute.available_now == pytest.approx(60, abs=2)
    assert status.tokens_reserved == pytest.approx(40)
    async with second.acquire(tokens=50) as permit:
        permit.refund()  # a 429: it used nothing
    status = await first.astatus()
    assert status.tokens_reserved == pytest.approx(40)
    await close(first, second)


async def test_a_pause_from_one_process_holds_back_the_others(redis_url: str) -> None:
    first, second = limiters(redis_url, 2)
    await first.apause_for(0.5)
    started = time.monotonic()
    async with second.acquire():
        waited = time.monotonic() - started
    assert waited >= 0.45
    assert (await second.astatus()).server_pauses == 1
    await close(first, second)


async def test_headers_tighten_every_process(redis_url: str) -> None:
    first, second = limiters(redis_url, 2, requests_per_minute=6000)
    await first.aobserve_headers(
        RateLimitHeaders(limit_requests=600, remaining_requests=0)  # 10/s, nothing left
    )
    status = await second.astatus()
    assert status.requests_per_minute.limit == pytest.approx(600)
    assert status.header_tightenings >= 1
    started = time.monotonic()
    async with second.acquire():
        waited = time.monotonic() - started
    assert waited >= 0.08  # the next request is a tenth of a second away
    await close(first, second)


async def test_a_dead_processs_slot_is_freed_when_its_lease_runs_out(redis_url: str) -> None:
    name = uuid.uuid4().hex
    dying = RedisRateLimiter(config(concurrent_requests=1), url=redis_url, name=name, lease_s=0.3)
    other = RedisRateLimiter(config(concurrent_requests=1), url=redis_url, name=name)
    await dying._admit(0)  # admitted, never released: its process died mid-call
    started = time.monotonic()
    async with other.acquire():
        waited = time.monotonic() - started
    assert 0.2 <= waited < 5
    await close(dying, other)


async def test_an_unreachable_redis_is_a_clear_error_never_unlimited() -> None:
    limiter = RedisRateLimiter(config(), url="redis://:s3cret@127.0.0.1:1/0", name="gone")
    with pytest.raises(LimiterUnavailableError) as raised:
        async with limiter.acquire():
            pytest.fail("admitted without a limiter")
    assert "127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    await limiter.aclose()


async def test_bad_arguments_are_refused(redis_url: str) -> None:
    (limiter,) = limiters(redis_url, 1, tokens_per_minute=100)
    with pytest.raises(ConfigurationError, match="non-negative"):
        limiter.acquire(tokens=-1)
    with pytest.raises(RequestTooLargeError, match="can never fit"):
        limiter.acquire(tokens=1000)
    with pytest.raises(ConfigurationError, match="RateLimitConfig"):
        RedisRateLimiter("tier_9", url=redis_url)  # type: ignore[arg-type]
    await close(limiter)


@pytest.mark.slow  # 15 s of real time
def test_four_processes_share_600_rpm_without_a_429(redis_url: str) -> None:
    """The issue's check: together within the limit (no 429 from the server's own limit
    check) and at least 90% of it."""
    seconds = 12.0
    server_config = ServerConfig(rpm=600, limit_window_s=10, api_key="sk-shared")
    with OpenAITestServer(server_config) as server:
        command = [
            sys.executable, "-m", "embed2prompt.testing.limit_worker",
            "--redis", redis_url, "--name", uuid.uuid4().hex, "--rpm", "600",
            "--base-url", server.url, "--api-key", "sk-shared", "--seconds", str(seconds),
        ]  # fmt: skip
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(4)]
        reports = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
        arrivals = server.stats()["arrivals"]
    assert all(worker.returncode == 0 for worker in workers)
    assert sum(report["rate_limited"] for report in reports) == 0
    assert all(arrival["outcome"] == "ok" for arrival in arrivals)
    span = arrivals[-1]["t"] - arrivals[0]["t"]
    achieved = len(arrivals) / (10 * span)
    assert achieved >= 0.9, (len(arrivals), span)
    assert min(report["ok"] for report in reports) > 0  # every process got its share


def test_settings_with_a_redis_url_share_each_models_limits(redis_url: str) -> None:
    from pydantic import SecretStr

    from embed2prompt.backends import create_generator
    from embed2prompt.settings import Settings

    settings = Settings(
        generator="openai",
        generator_model="gpt-4o-mini",
        openai_api_key=SecretStr("sk-x"),
        redis_url=SecretStr(redis_url),
        rate_limit_name="org-a",
    )
    generator = create_generator(settings)
    limiter = generator.executor.limiter  # type: ignore[attr-defined]
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.name == "org-a:gpt-4o-mini"
    assert limiter.config == settings.rate_limits


async def test_the_minute_counters_stay_bounded_however_long_it_runs(redis_url: str) -> None:
    import redis.asyncio

    now = 1_000_000.0
    limiter = RedisRateLimiter(config(), url=redis_url, name=uuid.uuid4().hex, clock=lambda: now)
    for _ in range(300):  # five minutes, a call a second
        async with limiter.acquire():
            pass
        now += 1.0
    client = redis.asyncio.from_url(redis_url)
    fields = await client.hlen(limiter._keys[4])
    await client.aclose()
    assert fields <= 2 * 62
    status = await limiter.astatus()
    assert status.requests_per_minute.used_last_window == pytest.approx(60, abs=1)
    await close(limiter)


async def test_a_password_in_the_query_string_is_not_shown() -> None:
    limiter = RedisRateLimiter(config(), url="redis://127.0.0.1:1/0?password=s3cret", name="q")
    with pytest.raises(LimiterUnavailableError) as raised:
        async with limiter.acquire():
            pass
    assert "s3cret" not in str(raised.value)
    await limiter.aclose()


def test_the_pipelines_metadata_reports_the_shared_limits_use(
    redis_url: str, server: OpenAITestServer
) -> None:
    from pydantic import SecretStr

    from embed2prompt.embedders.local import LocalEmbedder
    from embed2prompt.inversion.inference import SMALL_MODEL, EmbeddingToPromptInference
    from embed2prompt.pipeline import ParallelPromptGenerator
    from embed2prompt.settings import Settings
    from tests.conftest import TEST_KEY

    embedder = LocalEmbedder()
    inverter = EmbeddingToPromptInference(SMALL_MODEL, embedder=embedder)
    settings = Settings(
        generator="openai",
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=server.url,
        redis_url=SecretStr(redis_url),
        rate_limit_name=uuid.uuid4().hex,
        refinement_steps=0,
    )
    targets = embedder.embed_sync(["a question about tea", "a poem about rain"])

    async def run() -> dict:
        async with ParallelPromptGenerator(inverter, settings) as pipeline:
            response = await pipeline.generate_prompts_with_evaluation(targets)
        return json.loads(response.model_dump_json())

    metrics = asyncio.run(run())["metadata"]["performance_metrics"]
    (usage,) = metrics["rate_limits"]
    assert usage["requests_used_last_minute"] == metrics["generator_calls"] == 2


@settings(max_examples=60, deadline=None)
@given(rate=RATES, burst=BURSTS, requests=schedules(30))
# The schedule that found the in-process bucket's rounding: a deficit of 6e-5 units at 62
# units a second is a wait under a microsecond, which must still be waited for.
@example(rate=62.0, burst=1.0, requests=[(0.0, 1.0), (0.0, 6.103515625e-05)])
def test_the_shared_bucket_admits_at_most_rate_times_length_plus_burst(
    redis_url: str, rate: float, burst: float, requests: list[tuple[float, float]]
) -> None:
    """The Lua script's token bucket on a fake clock: each request (gap before it, cost as
    a fraction of the burst) asks until admitted, the clock moving on by each wait the
    script returns; then in every interval [t_i, t_j] the admitted tokens are at most
    rate * (t_j - t_i) + burst."""

    async def admit_all() -> list[tuple[float, float]]:
        now = 1_000_000.0
        limiter = RedisRateLimiter(
            config(tokens_per_minute=rate * 60, token_burst=burst),
            url=redis_url,
            name=uuid.uuid4().hex,
            clock=lambda: now,
        )
        admitted = []
        try:
            for gap, fraction in requests:
                now += gap
                cost = fraction * burst
                for _ in range(10):
                    args = (cost, 1000, uuid.uuid4().hex, 600.0, *limiter._bucket_args())
                    started, value, *_ = await limiter._run("acquire", *args)
                    if int(started) == 1:
                        admitted.append((now, cost))
                        break
                    assert float(value) > 0, "asked to wait for a free slot among 1000"
                    now += float(value)
                else:
                    raise AssertionError(f"a cost of {cost} was refused 10 times")
        finally:
            await limiter.aclose()
        return admitted

    admitted = asyncio.run(admit_all())
    assert_paced(admitted, rate, burst)

"""AsyncEmbeddingProcessor: order, isolation, bounded concurrency, streaming, metrics."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from embed2prompt import ConfigurationError
from embed2prompt.engine import (
    AsyncEmbeddingProcessor,
    CallExecutor,
    OpenAIRateLimiter,
    RateLimitConfig,
    RetryPolicy,
)

pytestmark = pytest.mark.looptime


async def test_results_keep_input_order_and_index() -> None:
    async def slow_for_small(n: int) -> int:
        await asyncio.sleep(10 - n)  # later items finish first
        return n * n

    report = await AsyncEmbeddingProcessor(max_concurrent=10).run(slow_for_small, range(10))
    assert [r.index for r in report.results] == list(range(10))
    assert [r.value for r in report.results] == [n * n for n in range(10)]


async def test_one_failure_never_stops_the_others() -> None:
    async def fragile(n: int) -> int:
        await asyncio.sleep(0.01)
        if n % 3 == 0:
            raise ValueError(f"item {n} is bad")
        return n

    report = await AsyncEmbeddingProcessor(max_concurrent=4).run(fragile, range(12))
    failed = [r for r in report.results if not r.ok]
    assert [r.index for r in failed] == [0, 3, 6, 9]
    assert failed[1].error is not None
    assert (failed[1].error.type, failed[1].error.message) == ("ValueError", "item 3 is bad")
    assert report.metrics.successful == 8
    assert report.metrics.failed == 4
    assert all(r.value == r.index for r in report.results if r.ok)


async def test_concurrency_is_bounded() -> None:
    running = peak = 0

    async def work(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(1)
        running -= 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    await AsyncEmbeddingProcessor(max_concurrent=7).run(work, range(70))
    assert peak == 7
    assert loop.time() - started == pytest.approx(10.0)  # exactly ceil(70/7) rounds


async def test_accepts_async_iterables() -> None:
    async def numbers() -> AsyncIterator[int]:
        for n in range(5):
            await asyncio.sleep(0)
            yield n

    async def double(n: int) -> int:
        return 2 * n

    report = await AsyncEmbeddingProcessor().run(double, numbers())
    assert [r.value for r in report.results] == [0, 2, 4, 6, 8]


async def test_unordered_stream_yields_as_items_finish() -> None:
    async def wait(n: int) -> int:
        await asyncio.sleep(5 - n)
        return n

    stream = AsyncEmbeddingProcessor(max_concurrent=5).stream(wait, range(5), ordered=False)
    assert [r.index async for r in stream] == [4, 3, 2, 1, 0]


async def test_ordered_stream_holds_a_bounded_window_behind_a_slow_item() -> None:
    started: list[int] = []

    async def work(n: int) -> int:
        started.append(n)
        await asyncio.sleep(100 if n == 0 else 1)
        return n

    async with AsyncEmbeddingProcessor(max_concurrent=2).stream(work, range(1000)) as stream:
        async for first in stream:
            assert first.index == 0
            break
    # While item 0 ran for 100 s, only the window (4 x concurrency) had started.
    assert max(started) == 7


async def test_breaking_out_cancels_work_in_progress() -> None:
    started: set[int] = set()
    finished: set[int] = set()
    cancelled: set[int] = set()

    async def work(n: int) -> int:
        started.add(n)
        try:
            await asyncio.sleep(1 + n)
        except asyncio.CancelledError:
            cancelled.add(n)
            raise
        finished.add(n)
        return n

    async with AsyncEmbeddingProcessor(max_concurrent=5).stream(work, range(100)) as stream:
        async for result in stream:
            if result.index == 2:
                break
    assert len(cancelled) == 5  # every slot was busy; closing the stream cancelled them all
    assert cancelled == started - finished
    await asyncio.sleep(1000)
    assert started == finished | cancelled  # and nothing new started afterwards


async def test_a_stop_lets_items_in_progress_finish_and_starts_no_more() -> None:
    started: list[int] = []

    async def slow(n: int) -> int:
        started.append(n)
        await asyncio.sleep(1 + n / 10)  # one at a time: the first finishes alone
        return n

    stop = asyncio.Event()
    processor = AsyncEmbeddingProcessor(max_concurrent=3)
    finished = []
    async with processor.stream(slow, range(100), ordered=False, stop=stop) as results:
        async for result in results:
            finished.append(result)
            stop.set()  # after the first result: the other two in progress still finish
    # The first wave of 3, and the item that had replaced the first when the stop came.
    assert len(finished) == 4
    assert all(result.ok for result in finished)
    assert sorted(started) == sorted(result.index for result in finished)


async def test_an_input_that_fails_to_read_raises_to_the_caller() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("disk unplugged")

    async def same(n: int) -> int:
        return n

    with pytest.raises(OSError, match="disk unplugged"):
        await AsyncEmbeddingProcessor().run(same, items())


@pytest.mark.slow
async def test_a_stream_of_100k_items_runs_in_flat_memory() -> None:
    async def work(n: int) -> int:
        return n

    async def consume(count: int) -> int:
        tracemalloc.start()
        seen = 0
        async for result in AsyncEmbeddingProcessor(max_concurrent=50).stream(work, range(count)):
            seen += result.ok
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seen == count
        return peak

    small, large = await consume(2_000), await consume(100_000)
    assert large < small * 3  # 50 times the items, about the same memory
    assert large < 5_000_000


async def test_limiter_and_retries_apply_to_each_item() -> None:
    limiter = OpenAIRateLimiter(
        RateLimitConfig(
            requests_per_minute=60,
            requests_per_day=10_000,
            tokens_per_minute=1e6,
            tokens_per_day=1e9,
            concurrent_requests=5,
            request_burst=1,
        )
    )
    failures = {3: 1, 5: 2}

    async def call(n: int) -> int:
        if failures.get(n):
            failures[n] -= 1
            raise ConnectionError("reset by peer")
        return n

    processor = AsyncEmbeddingProcessor(
        limiter=limiter, retry_policy=RetryPolicy(base_delay_s=0.1), max_concurrent=5
    )
    report = await processor.run(call, range(10), tokens=lambda n: 10)
    assert all(r.ok for r in report.results)
    assert [r.attempts for r in report.results] == [1, 1, 1, 2, 1, 3, 1, 1, 1, 1]
    metrics = report.metrics
    assert (metrics.attempts, metrics.retries) == (13, 3)
    assert limiter.status().requests_started == 13
    assert metrics.wall_time_s >= 12.0  # 13 starts at one per second
    assert metrics.limiter_wait_s > 0


async def test_calls_made_inside_an_item_are_counted_on_it() -> None:
    inner = CallExecutor(retry_policy=RetryPolicy(base_delay_s=0.01))
    flaky = {"left": 2}

    async def two_api_calls(n: int) -> int:
        async def once() -> int:
            if flaky["left"]:
                flaky["left"] -= 1
                raise TimeoutError
            return n

        await inner.call(once)
        return await inner.call(once)

    report = await AsyncEmbeddingProcessor(max_concurrent=1).run(two_api_calls, [7])
    assert report.results[0].attempts == 4  # two calls, two retries
    assert report.metrics.retries == 2


async def test_metrics_percentiles() -> None:
    async def wait(n: int) -> int:
        await asyncio.sleep(n / 100)
        return n

    report = await AsyncEmbeddingProcessor(max_concurrent=100).run(wait, range(1, 101))
    metrics = report.metrics
    assert metrics.p50_latency_s == pytest.approx(0.50)
    assert metrics.p95_latency_s == pytest.approx(0.95)
    assert metrics.mean_latency_s == pytest.approx(0.505)
    assert metrics.wall_time_s == pytest.approx(1.0)
    assert metrics.requests_per_second == pytest.approx(100)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_concurrency_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        AsyncEmbeddingProcessor(max_concurrent=bad)  # type: ignore[arg-type]


async def test_a_stream_is_iterated_once() -> None:
    async def same(n: int) -> int:
        return n

    stream = AsyncEmbeddingProcessor().stream(same, [1])
    _ = [r async for r in stream]
    with pytest.raises(ConfigurationError, match="only once"):
        stream.__aiter__()


async def test_a_cancelled_error_from_fn_is_that_items_error() -> None:
    async def fn(n: int) -> int:
        await asyncio.sleep(0.1)
        if n == 1:
            raise asyncio.CancelledError  # e.g. it awaited a future someone else cancelled
        return n

    report = await AsyncEmbeddingProcessor(max_concurrent=2).run(fn, range(5))
    assert [r.ok for r in report.results] == [True, False, True, True, True]
    assert report.results[1].error is not None
    assert report.results[1].error.type == "CancelledError"


async def test_closing_from_another_task_ends_the_consumers_loop() -> None:
    async def slow(n: int) -> int:
        await asyncio.sleep(10)
        return n

    stream = AsyncEmbeddingProcessor(max_concurrent=2).stream(slow, range(100))

    async def consume() -> list[int]:
        return [r.index async for r in stream]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(15)  # two items done, two in progress
    await stream.aclose()
    assert await consumer == [0, 1]


async def test_a_slow_consumer_holds_back_the_workers() -> None:
    started: list[int] = []

    async def quick(n: int) -> int:
        started.append(n)
        return n

    stream = AsyncEmbeddingProcessor(max_concurrent=2).stream(quick, range(10_000), ordered=False)
    consumed = 0
    async with stream:
        async for _ in stream:
            consumed += 1
            # Only the window (4 x concurrency) may run ahead of what was consumed.
            assert len(started) - consumed <= 8
            await asyncio.sleep(1)  # a consumer far slower than the workers
            if consumed == 50:
                break
    assert len(started) <= 50 + 8


async def test_closing_before_the_workers_start_still_ends_the_consumer() -> None:
    async def slow(n: int) -> int:
        await asyncio.sleep(10)
        return n

    stream = AsyncEmbeddingProcessor(max_concurrent=2).stream(slow, range(100))

    async def consume() -> list[int]:
        return [r.index async for r in stream]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer has started; its workers have not run yet
    await stream.aclose()
    assert await asyncio.wait_for(consumer, timeout=1) == []
    assert stream.closed

"""The shared micro-batcher, with a batch function that records what it was given."""

from __future__ import annotations

import asyncio

import pytest

from embed2prompt.errors import ConfigurationError
from embed2prompt.microbatch import Batcher


class Recorder:
    """Doubles numbers, recording each batch; a negative number fails its batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if any(item < 0 for item in items):
            raise ValueError(f"bad batch {items}")
        return [2 * item for item in items]


async def test_concurrent_items_run_as_one_batch_each_getting_its_own_result() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=100, max_wait_s=0.01)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [2 * i for i in range(10)]
    assert run.batches == [list(range(10))]
    assert (batcher.batches_run, list(batcher.batch_sizes)) == (1, [10])


async def test_a_full_batch_runs_at_once_and_size_weighs_items() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=4, max_wait_s=60.0, size=lambda item: item)
    # 1 + 3 reaches max_batch: flushed without waiting the minute; then 5 alone is full.
    results = await asyncio.gather(batcher.submit(1), batcher.submit(3), batcher.submit(5))
    assert results == [2, 6, 10]
    assert run.batches == [[1, 3], [5]]


async def test_a_failing_batch_fails_every_caller_in_it() -> None:
    batcher = Batcher(Recorder(), max_batch=10, max_wait_s=0.001)
    results = await asyncio.gather(
        batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True
    )
    assert all(isinstance(result, ValueError) for result in results)
    assert batcher.batches_run == 0


async def test_with_split_failures_a_bad_item_fails_alone() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=10, max_wait_s=0.001, split_failures=True)
    first, bad, last = await asyncio.gather(
        batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True
    )
    assert (first, last) == (2, 4)
    assert isinstance(bad, ValueError)
    assert run.batches == [[1, -1, 2], [1], [-1], [2]]
    assert list(batcher.batch_sizes) == [3, 1, 1, 1]


async def test_a_caller_that_gave_up_is_left_out_of_the_batch() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=10, max_wait_s=0.01)
    gone = asyncio.ensure_future(batcher.submit(7))
    stays = asyncio.ensure_future(batcher.submit(8))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == 16
    assert run.batches == [[8]]


async def test_a_wrong_number_of_results_is_every_callers_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = Batcher(short, max_batch=10, max_wait_s=0.001)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all("gave 1 results" in str(result) for result in results)


async def test_aclose_runs_what_is_pending() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=10, max_wait_s=60.0)
    waiting = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert await waiting == 8


def test_one_batcher_serves_one_event_loop_after_another() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=10, max_wait_s=0.001)

    async def use() -> list[int]:
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        await batcher.aclose()
        return results

    assert asyncio.run(use()) == [2, 4]
    assert asyncio.run(use()) == [2, 4]
    assert run.batches == [[1, 2], [1, 2]]


@pytest.mark.parametrize(
    ("max_batch", "max_wait_s", "message"),
    [(0, 0.0, "max_batch"), (1, -1.0, "max_wait_s")],
)
def test_bad_limits_are_refused(max_batch: int, max_wait_s: float, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Batcher(Recorder(), max_batch=max_batch, max_wait_s=max_wait_s)

"""Micro-batching: items from many concurrent callers, run together as one batch.

A model runs a batch of inputs in far less than the time of running them one by one, so
when many callers each ask for a little at once, :class:`Batcher` holds each item for
up to ``max_wait_s`` (a few milliseconds), or until ``max_batch`` units have arrived, then
runs everything pending as one batch and hands every caller its own result. One batch
runs at a time (the model uses every core itself); items arriving meanwhile form the next.

The embedder (:mod:`embed2prompt.embedders.batching`) and the pipeline's inverter
(:mod:`embed2prompt.pipeline.inversion_batching`) both batch this way; each supplies only
the function that runs a batch.

Example::

    async def double(items: list[int]) -> list[int]:
        return [2 * item for item in items]

    batcher = Batcher(double, max_batch=16, max_wait_s=0.002)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))  # one batch
    await batcher.aclose()
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from embed2prompt.errors import ConfigurationError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def _one(_item: object) -> int:
    return 1


@dataclass(slots=True)
class _Request(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]


class Batcher(Generic[ItemT, ResultT]):
    """Runs ``run_batch`` over batches merged from many callers' items.

    ``run_batch`` gets the items of a batch in arrival order and returns one result per
    item, in the same order. ``size`` weighs an item against ``max_batch`` (1 each by
    default; the embedder counts texts). If a batch raises, every caller in it gets the
    error, or with ``split_failures`` a batch of several is rerun one item at a time, so
    that a bad item fails alone.
    """

    def __init__(
        self,
        run_batch: Callable[[list[ItemT]], Awaitable[list[ResultT]]],
        *,
        max_batch: int,
        max_wait_s: float,
        size: Callable[[ItemT], int] = _one,
        split_failures: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ConfigurationError(f"max_wait_s must be non-negative, got {max_wait_s}")
        self._run_batch = run_batch
        self._size = size
        self._split_failures = split_failures
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[_Request[ItemT, ResultT]] = []
        self._pending_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()  # one batch at a time: the model uses every core
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches_run = 0  # batches that succeeded
        # The sizes (callers) of recent batches, failed ones included, for tests and
        # tuning; bounded, as a service's batcher lives as long as the process.
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    async def submit(self, item: ItemT) -> ResultT:
        """The result for ``item``, computed in some batch with other callers' items."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (each asyncio.run makes one): state tied to the old loop
            # cannot be used in this one, so start afresh.
            self._loop, self._pending, self._pending_size, self._timer = loop, [], 0, None
            self._lock, self._running = asyncio.Lock(), set()
        request: _Request[ItemT, ResultT] = _Request(item, loop.create_future())
        self._pending.append(request)
        self._pending_size += self._size(item)
        if self._pending_size >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await request.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        requests, self._pending, self._pending_size = self._pending, [], 0
        if requests:
            task = asyncio.get_running_loop().create_task(self._run(requests))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, requests: list[_Request[ItemT, ResultT]]) -> None:
        live = [request for request in requests if not request.future.done()]
        if not live:  # every caller gave up (cancelled or timed out) while waiting
            return
        failure: Exception | None = None
        results: list[ResultT] = []
        async with self._lock:  # batches queue here while the previous one runs
            self.batch_sizes.append(len(live))
            try:
                results = await self._run_batch([request.item for request in live])
                if len(results) != len(live):
                    raise RuntimeError(f"a batch of {len(live)} items gave {len(results)} results")
            except Exception as error:
                failure = error
            else:
                self.batches_run += 1
        if failure is not None and self._split_failures and len(live) > 1:
            for request in live:  # find the item that fails: each alone
                await self._run([request])
            return
        for index, request in enumerate(live):
            if request.future.done():
                continue
            if failure is not None:
                request.future.set_exception(failure)
            else:
                request.future.set_result(results[index])

    async def aclose(self) -> None:
        """Run what is pending and wait for the batches in progress."""
        if self._loop is not asyncio.get_running_loop():
            return  # never used in this loop: nothing here to finish
        self._flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

"""AsyncEmbeddingProcessor: an async function over many items, in parallel, under limits.

It is the core every batch job runs on. Items come from a list or any (async) iterable;
at most ``max_concurrent`` are in progress at once, each call goes through the
:class:`CallExecutor` (limiter and retries), and every item ends as an :class:`ItemResult`
carrying its input index. One item's failure is recorded on that item and never stops the
others. Streaming keeps memory flat: only the items in progress, and in ordered mode a
bounded window of finished ones waiting for an earlier item, are held at any time.

Example::

    processor = AsyncEmbeddingProcessor(limiter=OpenAIRateLimiter(RateLimitTier.TIER_2),
                                        max_concurrent=20)
    report = await processor.run(embed_one, texts, tokens=count_tokens)
    print(report.metrics.p95_latency_s, [r.error for r in report.results if not r.ok])
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from embed2prompt.engine.executor import CallExecutor
from embed2prompt.engine.limiter_base import RateLimiter
from embed2prompt.engine.metrics import (
    CallStats,
    LatencyRecorder,
    RunMetrics,
    current_call_stats,
)
from embed2prompt.engine.retry import RetryPolicy
from embed2prompt.errors import ConfigurationError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# How many items may start beyond the results handed out so far (in ordered mode: beyond
# the oldest unfinished item), as a multiple of max_concurrent. Bounds memory while one
# slow item holds up the output or the consumer is slower than the workers.
_ORDER_WINDOW_FACTOR = 4


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why one item failed: the exception's type name and its message, and the class
    itself (``exception``), so that callers branch on the type, not on the words."""

    type: str
    message: str
    # The class only, not the exception: a held exception keeps its traceback's frames
    # (and whatever arrays they hold) alive for as long as the result is kept.
    exception: builtins.type[BaseException] | None = field(default=None, compare=False)

    @classmethod
    def from_exception(cls, error: BaseException) -> ItemError:
        return cls(type(error).__name__, str(error) or type(error).__name__, type(error))


@dataclass(frozen=True, slots=True)
class ItemResult(Generic[ResultT]):
    """The outcome of one input item. Exactly one of ``value`` and ``error`` is set."""

    index: int
    value: ResultT | None
    error: ItemError | None
    attempts: int
    latency_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RunReport(Generic[ResultT]):
    """Every item's result, in input order, and the run's metrics."""

    results: list[ItemResult[ResultT]]
    metrics: RunMetrics


class AsyncEmbeddingProcessor:
    """Runs ``fn(item)`` for every item with bounded concurrency and isolated failures.

    When each item is one API call, give a ``limiter`` and/or a ``retry_policy``: every
    call then goes through a :class:`CallExecutor` with them. When ``fn`` makes its own
    limited calls (through an embedder or generator that has its executor), leave both
    out: ``fn`` runs as it is, and the calls it makes are still counted on its item.
    """

    def __init__(
        self,
        *,
        limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        max_concurrent: int = 10,
        attempt_timeout_s: float | None = None,
    ) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise ConfigurationError(f"max_concurrent must be an integer, got {max_concurrent!r}")
        if max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.limiter = limiter
        self.executor: CallExecutor | None = None
        if limiter is not None or retry_policy is not None or attempt_timeout_s is not None:
            self.executor = CallExecutor(
                limiter=limiter,
                retry_policy=retry_policy or RetryPolicy(),
                attempt_timeout_s=attempt_timeout_s,
            )
        self.max_concurrent = max_concurrent

    async def run(
        self,
        fn: Callable[[ItemT], Awaitable[ResultT]],
        items: Iterable[ItemT] | AsyncIterable[ItemT],
        *,
        tokens: Callable[[ItemT], float] | None = None,
    ) -> RunReport[ResultT]:
        """Process every item and return all results in input order."""
        stream = self.stream(fn, items, tokens=tokens, ordered=True)
        results = [result async for result in stream]
        return RunReport(results=results, metrics=stream.metrics)

    def stream(
        self,
        fn: Callable[[ItemT], Awaitable[ResultT]],
        items: Iterable[ItemT] | AsyncIterable[ItemT],
        *,
        tokens: Callable[[ItemT], float] | None = None,
        ordered: bool = True,
        stop: asyncio.Event | None = None,
    ) -> ResultStream[ItemT, ResultT]:
        """Results as they finish (``ordered=False``) or in input order, in flat memory.

        ``tokens(item)`` estimates the tokens one call will use, for the limiter's TPM.
        Once ``stop`` is set, no new item starts; those in progress finish and are
        yielded, then the stream ends (a graceful stop, where ``aclose`` is an abrupt one).
        ``stream.metrics`` is a live snapshot, usable for progress reports mid-run. Use it
        as ``async with processor.stream(...) as results: async for r in results: ...``
        so that leaving the loop early cancels the work still in progress at once.
        """
        return ResultStream(self, fn, items, tokens=tokens, ordered=ordered, stop=stop)


class ResultStream(Generic[ItemT, ResultT]):
    """The async iterator returned by :meth:`AsyncEmbeddingProcessor.stream`."""

    def __init__(
        self,
        processor: AsyncEmbeddingProcessor,
        fn: Callable[[ItemT], Awaitable[ResultT]],
        items: Iterable[ItemT] | AsyncIterable[ItemT],
        *,
        tokens: Callable[[ItemT], float] | None,
        ordered: bool,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._processor = processor
        self._stop = stop
        self._fn = fn
        self._items = items
        self._tokens = tokens
        self._ordered = ordered
        self._stats = CallStats()
        self._latencies = LatencyRecorder()
        self._total = 0
        self._failed = 0
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._limiter_wait_at_start = 0.0
        self._iterator: AsyncGenerator[ItemResult[ResultT], None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._finished: asyncio.Queue[ItemResult[ResultT] | _WorkerDone] | None = None
        self.closed = False  # aclose() was called: the results may be incomplete

    @property
    def metrics(self) -> RunMetrics:
        loop_time = asyncio.get_running_loop().time
        started = self._started_at if self._started_at is not None else loop_time()
        finished = self._finished_at if self._finished_at is not None else loop_time()
        wall = max(0.0, finished - started)
        limiter = self._processor.limiter
        limiter_wait, rate_share = 0.0, 1.0
        if limiter is not None:
            status = limiter.status()
            limiter_wait = status.wait_time_s - self._limiter_wait_at_start
            rate_share = status.rate_share
        latencies = self._latencies
        return RunMetrics(
            total=self._total,
            successful=self._total - self._failed,
            failed=self._failed,
            attempts=self._stats.attempts,
            retries=self._stats.retries,
            rate_limited=self._stats.rate_limited,
            adapting_retries=self._stats.adapting_retries,
            tokens_used=self._stats.tokens_used,
            wall_time_s=wall,
            requests_per_second=self._total / wall if wall > 0 else 0.0,
            mean_latency_s=latencies.mean,
            p50_latency_s=latencies.percentile(0.50),
            p95_latency_s=latencies.percentile(0.95),
            limiter_wait_s=limiter_wait,
            retry_wait_s=self._stats.retry_wait_s,
            limiter_rate_share=rate_share,
        )

    def __aiter__(self) -> AsyncIterator[ItemResult[ResultT]]:
        if self._iterator is not None:
            raise ConfigurationError("a result stream can be iterated only once")
        self._iterator = self._iterate()
        return self._iterator

    async def aclose(self) -> None:
        """Stop: cancel the items in progress and start no more. Safe to call from any
        task, also while another task is iterating (its loop then simply ends)."""
        self.closed = True
        if self._finished is not None:
            self._finished.put_nowait(_CLOSED)  # ends a consumer in another task at once
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        # While another task is inside the generator, it cannot be closed from here; with
        # its workers gone it receives their last messages and ends by itself.
        running = getattr(self._iterator, "ag_running", False)
        if self._iterator is not None and not running:
            await self._iterator.aclose()

    async def __aenter__(self) -> ResultStream[ItemT, ResultT]:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _iterate(self) -> AsyncGenerator[ItemResult[ResultT], None]:
        # A pool of ``max_concurrent`` workers, each taking the next item as soon as it
        # finishes one: a freed slot is refilled within the same task, without a round
        # trip through the event loop, which matters when hundreds of calls are in flight.
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        limiter = self._processor.limiter
        self._limiter_wait_at_start = limiter.status().wait_time_s if limiter else 0.0

        concurrency = self._processor.max_concurrent
        window = concurrency * _ORDER_WINDOW_FACTOR
        source = _aiter_items(self._items)
        source_lock = asyncio.Lock()  # an async generator must not be advanced twice at once
        # Unbounded, so a worker can always report its end, even while being cancelled;
        # memory stays bounded because no item starts more than ``window`` items ahead of
        # the results handed out (below).
        finished: asyncio.Queue[ItemResult[ResultT] | _WorkerDone] = asyncio.Queue()
        self._finished = finished
        window_moved = asyncio.Event()
        handed_out = 0  # ordered: results yielded in order; unordered: results yielded
        started = 0

        async def take() -> tuple[int, ItemT] | None:
            nonlocal started
            async with source_lock:  # the window is checked under the lock: exactly bounded
                while started - handed_out >= window:
                    window_moved.clear()
                    await window_moved.wait()  # the consumer, or an earlier item, is behind
                if self._stop is not None and self._stop.is_set():
                    return None
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return None
                started += 1
                return started - 1, item

        async def worker() -> None:
            error: BaseException | None = None
            try:
                while (taken := await take()) is not None:
                    finished.put_nowait(await self._process(*taken))
            except Exception as source_error:  # the caller's iterable raised
                error = source_error
            finally:
                finished.put_nowait(_WorkerDone(error))

        self._workers = [loop.create_task(worker()) for _ in range(concurrency)]
        waiting_for_order: dict[int, ItemResult[ResultT]] = {}
        try:
            remaining_workers = concurrency
            while remaining_workers:
                result = await finished.get()
                if result is _CLOSED:
                    break
                if isinstance(result, _WorkerDone):
                    remaining_workers -= 1
                    if result.error is not None:
                        raise result.error
                    continue
                self._count(result)
                if not self._ordered:
                    handed_out += 1
                    window_moved.set()
                    yield result
                    continue
                waiting_for_order[result.index] = result
                while handed_out in waiting_for_order:
                    handed_out += 1
                    window_moved.set()
                    yield waiting_for_order.pop(handed_out - 1)
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
            self._finished_at = loop.time()

    def _count(self, result: ItemResult[ResultT]) -> None:
        self._total += 1
        if not result.ok:
            self._failed += 1
        self._latencies.add(result.latency_s)

    async def _process(self, index: int, item: ItemT) -> ItemResult[ResultT]:
        """Never raises (except when this worker is cancelled): a failure, including a
        CancelledError escaping from ``fn`` itself, becomes this item's error."""
        started = asyncio.get_running_loop().time()
        item_stats = CallStats()
        current_call_stats.set(item_stats)  # this task's own context: counts its calls
        executor = self._processor.executor
        try:
            if executor is None:
                value = await self._fn(item)
            else:
                estimate = self._tokens(item) if self._tokens is not None else 0.0
                value = await executor.call(lambda: self._fn(item), tokens=estimate)
        except asyncio.CancelledError as cancelled:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped
            message = str(cancelled) or "the call was cancelled"
            error = ItemError("CancelledError", message, type(cancelled))
            return self._finish(index, None, error, item_stats, started)
        except Exception as error:
            return self._finish(index, None, ItemError.from_exception(error), item_stats, started)
        return self._finish(index, value, None, item_stats, started)

    def _finish(
        self,
        index: int,
        value: ResultT | None,
        error: ItemError | None,
        item_stats: CallStats,
        started: float,
    ) -> ItemResult[ResultT]:
        run_stats = self._stats
        run_stats.attempts += item_stats.attempts
        run_stats.retries += item_stats.retries
        run_stats.rate_limited += item_stats.rate_limited
        run_stats.adapting_retries += item_stats.adapting_retries
        run_stats.tokens_used += item_stats.tokens_used
        run_stats.retry_wait_s += item_stats.retry_wait_s
        latency = asyncio.get_running_loop().time() - started
        return ItemResult(index, value, error, max(1, item_stats.attempts), latency)


@dataclass(frozen=True, slots=True)
class _WorkerDone:
    """A worker's last message: the input is exhausted, or reading it failed."""

    error: BaseException | None


_CLOSED = _WorkerDone(None)  # put by aclose(): stop now, whatever the workers are doing


async def _aiter_items(items: Iterable[ItemT] | AsyncIterable[ItemT]) -> AsyncIterator[ItemT]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
        return
    iterator: Iterator[ItemT] = iter(items)
    for item in iterator:
        yield item

"""Many concurrent items, one inverter: their inversions run as shared batches.

The inverter decodes and re-embeds a batch of targets in little more time than one, so
when the pipeline's items ask for inversions concurrently, requests arriving within a few
milliseconds of each other (or while the previous batch runs) are inverted together, and
each caller gets its own result. A batch that fails is rerun one target at a time, so a
bad target fails alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from embed2prompt.inversion.inference import (
    DEFAULT_BEAM,
    DEFAULT_EDITS,
    DEFAULT_FLUENCY,
    EmbeddingToPromptInference,
    InversionResult,
)


@dataclass(slots=True)
class _Request:
    target: npt.NDArray[np.float32]
    future: asyncio.Future[InversionResult]


class InversionBatcher:
    """Inverts targets with ``steps`` refinement steps, batched across concurrent callers."""

    def __init__(
        self,
        inverter: EmbeddingToPromptInference,
        *,
        steps: int,
        beam: int = DEFAULT_BEAM,
        edits: int = DEFAULT_EDITS,
        fluency: float = DEFAULT_FLUENCY,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
    ) -> None:
        self.inverter = inverter
        self.steps = steps
        self.beam = beam
        self.edits = edits
        self.fluency = fluency
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[_Request] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()  # one batch at a time: the inverter uses every core
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task[None]] = set()
        # The sizes of recent batches, for tests and tuning; bounded, as a service's
        # batcher lives as long as the process.
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    async def invert(self, target: npt.NDArray[np.float32]) -> InversionResult:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # each asyncio.run makes a new loop; start afresh in it
            self._loop, self._pending, self._timer = loop, [], None
            self._lock, self._running = asyncio.Lock(), set()
        request = _Request(target, loop.create_future())
        self._pending.append(request)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await request.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        requests, self._pending = self._pending, []
        if requests:
            task = asyncio.get_running_loop().create_task(self._run(requests))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, requests: list[_Request]) -> None:
        live = [request for request in requests if not request.future.done()]
        if not live:  # every caller gave up (timed out) while waiting
            return
        failure: Exception | None = None
        async with self._lock:
            self.batch_sizes.append(len(live))
            try:
                results = await self._invert([request.target for request in live])
            except Exception as error:
                failure, results = error, []
        if failure is not None and len(live) > 1:
            for request in live:  # find the target that fails: each alone
                await self._run([request])
            return
        if failure is not None:
            if not live[0].future.done():
                live[0].future.set_exception(failure)
            return
        for request, result in zip(live, results, strict=True):
            if not request.future.done():
                request.future.set_result(result)

    async def _invert(self, targets: list[npt.NDArray[np.float32]]) -> list[InversionResult]:
        return await self.inverter.ainvert_batch(
            np.stack(targets),
            steps=self.steps,
            beam=self.beam,
            edits=self.edits,
            fluency=self.fluency,
        )

    async def aclose(self) -> None:
        if self._loop is not asyncio.get_running_loop():
            return  # never used in this loop: nothing here to finish
        self._flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


class InversionsAhead:
    """The inversions of a run's targets, started ``lookahead`` items ahead of use.

    Items are taken in input order; while the first items wait on an API (a generation
    takes seconds), the next items' inversions already run on the otherwise idle CPU, so
    the CPU and network work overlap instead of alternating. ``lookahead`` 0 inverts each
    target only when its item asks (the sequential baseline).
    """

    def __init__(
        self, batcher: InversionBatcher, targets: npt.NDArray[np.float32], lookahead: int
    ) -> None:
        self._batcher = batcher
        self._targets = targets
        self._lookahead = lookahead
        self._tasks: dict[int, asyncio.Task[InversionResult]] = {}
        self._next = 0  # the first index not started yet

    async def result(self, index: int) -> InversionResult:
        self._start_through(index)  # this item's own wave: one batch with its neighbours
        task = self._tasks[index]
        try:
            result = await asyncio.shield(task)  # an item's timeout leaves the batch alone
        finally:
            if task.done():
                del self._tasks[index]
        # The next wave is inverted while this item goes on to wait on the generator.
        self._start_through(index + self._lookahead)
        return result

    def _start_through(self, last: int) -> None:
        loop = asyncio.get_running_loop()
        while self._next <= min(last, len(self._targets) - 1):
            target = self._targets[self._next]
            self._tasks[self._next] = loop.create_task(self._batcher.invert(target))
            self._next += 1

    async def aclose(self) -> None:
        """Cancel the inversions nobody will ask for (the run stopped early)."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

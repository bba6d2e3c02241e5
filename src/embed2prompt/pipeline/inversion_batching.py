"""Many concurrent items, one inverter: their inversions run as shared batches.

The inverter decodes and re-embeds a batch of targets in little more time than one, so
when the pipeline's items ask for inversions concurrently, requests arriving within a few
milliseconds of each other (or while the previous batch runs) are inverted together, and
each caller gets its own result. A batch that fails is rerun one target at a time, so a
bad target fails alone.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from embed2prompt.inversion.budget import SearchBudget
from embed2prompt.inversion.inference import EmbeddingToPromptInference, InversionResult
from embed2prompt.microbatch import Batcher


class InversionBatcher(Batcher[npt.NDArray[np.float32], InversionResult]):
    """Inverts targets with one search ``budget`` (default: the inverter's own),
    batched across concurrent callers.

    A batch of several that fails is rerun one target at a time, so a bad target fails
    alone."""

    def __init__(
        self,
        inverter: EmbeddingToPromptInference,
        budget: SearchBudget | None = None,
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
    ) -> None:
        super().__init__(
            self._invert, max_batch=max_batch, max_wait_s=max_wait_s, split_failures=True
        )
        self.inverter = inverter
        self.budget = budget or inverter.search

    async def invert(self, target: npt.NDArray[np.float32]) -> InversionResult:
        return await self.submit(target)

    async def _invert(self, targets: list[npt.NDArray[np.float32]]) -> list[InversionResult]:
        return await self.inverter.ainvert_batch(np.stack(targets), budget=self.budget)


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

"""Micro-batching for the local embedder: many concurrent callers with a few texts each.

A model on the CPU embeds 32 texts in far less than 32 times the time of one, so when a
service gets many single-text requests at once, :class:`MicroBatcher` (a
:class:`~embed2prompt.microbatch.Batcher` of text lists) holds each request for up to
``max_wait_s`` (a few milliseconds), runs everything that arrived as one batch in a worker
thread, and hands every caller its own rows. The event loop never blocks: the model runs
in a thread, one batch at a time, and requests arriving meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embed2prompt.embedders.base import Vectors
from embed2prompt.microbatch import Batcher


class MicroBatcher(Batcher[list[str], Vectors]):
    """Runs ``embed_batch`` (a blocking function) over batches merged from many callers.

    ``max_batch`` counts texts, not callers; if a batch fails, every caller in it gets
    the error."""

    def __init__(
        self,
        embed_batch: Callable[[list[str]], Vectors],
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        thread_name: str = "embed2prompt-embedder",
    ) -> None:
        super().__init__(self._embed, max_batch=max_batch, max_wait_s=max_wait_s, size=len)
        self._embed_batch = embed_batch
        # One thread: the model uses every core itself; two batches at once would fight.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    async def _embed(self, requests: list[list[str]]) -> list[Vectors]:
        texts = [text for request in requests for text in request]
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._pool, self._embed_batch, texts)
        rows, start = [], 0
        for request in requests:
            rows.append(np.ascontiguousarray(vectors[start : start + len(request)]))
            start += len(request)
        return rows

    async def aclose(self) -> None:
        await super().aclose()
        self._pool.shutdown(wait=True)

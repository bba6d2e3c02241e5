"""Micro-batching: many concurrent callers with a few texts each, run as one batch.

A model on the CPU embeds 32 texts in far less than 32 times the time of one, so when a
service gets many single-text requests at once, the batcher holds each request for up
to ``max_wait_s`` (a few milliseconds), runs everything that arrived as one batch in a
worker thread, and hands every caller its own rows. The event loop never blocks: the
model runs in a thread, one batch at a time, and requests arriving meanwhile form the
next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from embed2prompt.embedders.base import Vectors
from embed2prompt.errors import ConfigurationError


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors]


class MicroBatcher:
    """Runs ``embed_batch`` (a blocking function) over batches merged from many callers."""

    def __init__(
        self,
        embed_batch: Callable[[list[str]], Vectors],
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        thread_name: str = "embed2prompt-embedder",
    ) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ConfigurationError(f"max_wait_s must be non-negative, got {max_wait_s}")
        self._embed_batch = embed_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[_Request] = []
        self._pending_texts = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        # One thread: the model uses every core itself; two batches at once would fight.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_run = 0

    async def submit(self, texts: list[str]) -> Vectors:
        """Rows for ``texts``, computed in some batch together with other callers' texts."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (each asyncio.run makes one): state tied to the old loop
            # cannot be used in this one.
            self._loop, self._lock, self._pending, self._pending_texts = loop, None, [], 0
            self._flush_timer = None
        future: asyncio.Future[Vectors] = loop.create_future()
        self._pending.append(_Request(texts, future))
        self._pending_texts += len(texts)
        if self._pending_texts >= self.max_batch:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        requests, self._pending, self._pending_texts = self._pending, [], 0
        task = asyncio.get_running_loop().create_task(self._run(requests))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, requests: list[_Request]) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        live = [request for request in requests if not request.future.cancelled()]
        if not live:
            return
        texts = [text for request in live for text in request.texts]
        try:
            async with self._lock:  # batches queue here while the thread is busy
                loop = asyncio.get_running_loop()
                vectors = await loop.run_in_executor(self._pool, self._embed_batch, texts)
                self.batches_run += 1
        except Exception as error:
            for request in live:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        start = 0
        for request in live:
            rows = vectors[start : start + len(request.texts)]
            start += len(request.texts)
            if not request.future.done():
                request.future.set_result(np.ascontiguousarray(rows))

    async def aclose(self) -> None:
        self._flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._pool.shutdown(wait=True)

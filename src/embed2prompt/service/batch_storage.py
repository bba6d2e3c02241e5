"""A batch-mode job's rows and results, kept in the job store without SQLite on the loop.

:class:`~embed2prompt.batch_api.BatchApiRun` calls back synchronously, on the event
loop: it iterates its rows, asks whether a row's result is stored, and hands over each
result, none of them awaited. The job store waits on the disk, so
:class:`BatchRunStorage` answers those calls without touching it: the indices of the
stored results are read once before the run, the rows are read ahead a chunk at a time,
and the results are written while the loop goes on, all by one worker thread of its own
(so the store gets this job's calls in order; the embedder's micro-batcher keeps its
model on a thread the same way). Leaving the ``async with`` waits for the last write.

The loop can still wait on that thread in one case: when the run takes rows faster than
they are read, as a resumed run does while it skips the rows it inverted before. Only
an asynchronous row source in ``BatchApiRun`` would remove that wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from embed2prompt.batch.readers import Row
from embed2prompt.pipeline import PromptResult
from embed2prompt.service.job_store import JobStore

READ_AHEAD = 512  # rows read at a time: two chunks of the run's inversion

_P = ParamSpec("_P")
_T = TypeVar("_T")


class BatchRunStorage:
    """``rows``, ``is_emitted`` and ``emit`` for a ``BatchApiRun`` of job ``job_id``;
    ``on_results`` gets each result once it is stored, on the loop."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        on_results: Callable[[list[PromptResult]], None],
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._on_results = on_results
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job-{job_id}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stored: set[int] = set()
        self._first_rows: Future[list[Row]] | None = None
        self._failure: Exception | None = None  # the first write that failed

    async def __aenter__(self) -> BatchRunStorage:
        self._loop = asyncio.get_running_loop()
        try:
            self._stored = await self._in_thread(self._store.result_indices, self._job_id)
            self._first_rows = self._thread.submit(self._read_after, -1)
            await asyncio.wrap_future(self._first_rows)  # the run starts without waiting
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        return self

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Every write submitted so far is done once this no-op, queued after them, is.
        await self._in_thread(lambda: None)
        self._thread.shutdown(wait=False)
        if error is None and self._failure is not None:
            raise self._failure  # the job cannot hold its results: it fails

    def rows(self) -> Iterator[Row]:
        """The job's inputs in index order; the next chunk is read while the run
        inverts this one."""
        assert self._first_rows is not None, "rows() is for use inside the async with"
        reading = self._first_rows
        while chunk := reading.result():  # done at once, unless the run outpaces the reads
            reading = self._thread.submit(self._read_after, chunk[-1].index)
            yield from chunk

    def is_emitted(self, index: int) -> bool:
        return index in self._stored

    def emit(self, index: int, _identifier: str, result: PromptResult) -> None:
        """Store ``result`` as item ``index``'s (written in the worker thread)."""
        if index in self._stored:
            return
        self._stored.add(index)
        row = result.model_copy(update={"embedding_index": index}).model_dump(mode="json")
        self._thread.submit(self._write, index, row, result)

    def _read_after(self, index: int) -> list[Row]:
        return self._store.inputs_after(self._job_id, index, READ_AHEAD)

    def _write(self, index: int, row: dict[str, Any], result: PromptResult) -> None:
        """In the worker thread: one result into the store, then ``on_results`` on the
        loop. After a failed write the rest are skipped: the job fails on exit."""
        if self._failure is not None:
            return
        try:
            stored = self._store.save_result(self._job_id, index, row)
        except Exception as failure:  # the disk full, the database gone: the job fails
            self._failure = failure
            return
        if stored and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_results, [result])

    async def _in_thread(
        self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        return await asyncio.wrap_future(self._thread.submit(function, *args, **kwargs))

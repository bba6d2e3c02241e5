"""Running the service's jobs: batches too large for one request, stored as they go.

Each job runs as one task over its items without a result, a chunk at a time, through
the pipeline's :meth:`stream_prompts`; each result is written the moment its item is
done. A job in ``"mode": "batch"`` sends its evaluations through OpenAI's Batch API
(:mod:`embed2prompt.batch_api`) and stores each result when its batches are done.
Cancelling (``DELETE /jobs/{id}``) stops the task and marks the job cancelled. A job
with batches at the API is ``cancelling`` first: a task cancels them there, waits for
the API to stop them (OpenAI may take minutes), joins what they finished and deletes
the run's files there, then marks it cancelled. A shutdown stops every task and leaves
each job where it was, and :meth:`JobRunner.resume` (at start-up) restarts every job
that was queued or running and goes on stopping the batches of every job that was
cancelling. The store's calls run in a worker thread (``asyncio.to_thread``, or for a
batch-mode run's callbacks :class:`~embed2prompt.service.batch_storage.BatchRunStorage`'s
own): SQLite waits on the disk, the event loop must not.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from embed2prompt.errors import ApiError, TransientError
from embed2prompt.pipeline import ParallelPromptGenerator, PromptResult
from embed2prompt.service.batch_storage import BatchRunStorage
from embed2prompt.service.job_store import CANCELLING, UNFINISHED, JobStore

log = logging.getLogger(__name__)

CHUNK = 256  # items read from the database at a time: flat memory for large jobs


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        pipeline_for: Callable[[str, str | None], ParallelPromptGenerator],
        on_results: Callable[[list[PromptResult]], None] = lambda _: None,
    ) -> None:
        self.store = store
        self._pipeline_for = pipeline_for
        self._on_results = on_results
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # A job's batches being stopped at the API (at most one task a job): its
        # result, the API's refusal to cancel them, if it refused.
        self._stopping: dict[str, asyncio.Task[ApiError | None]] = {}
        self._cancelling = asyncio.Lock()

    def start(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def resume(self) -> list[str]:
        """Restart the jobs a previous server left queued or running, and go on
        stopping the batches of those it left cancelling."""
        jobs = await asyncio.to_thread(self.store.unfinished)
        for job_id in jobs:
            log.info("resuming job %s", job_id)
            self.start(job_id)
        for job_id in await asyncio.to_thread(self.store.cancelling):
            log.info("job %s: stopping its batches at the API", job_id)
            self._stop_batches(job_id, mark=True)
        return jobs

    async def cancel(self, job_id: str) -> asyncio.Task[ApiError | None] | None:
        """Cancel a job (a finished one is left as it is). One with a Batch API run is
        ``cancelling`` until its batches have stopped at the API (see the module's
        docstring); the task that stops them, which a caller may wait for, else None.
        A failed job's batches are stopped too, its state and error kept."""
        status = await asyncio.to_thread(self.store.status, job_id)
        if status is None or status.state in ("completed", "uploading"):
            return None
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        batches = (self.store.batch_folder(job_id) / "state.sqlite3").is_file()
        if not batches or status.options.get("mode") != "batch":
            if status.state in UNFINISHED:
                # Marked once the task has stopped, so that no write of its own can follow.
                await asyncio.to_thread(self.store.set_state, job_id, "cancelled")
            return None
        async with self._cancelling:  # two DELETEs at once share one task
            running = self._stopping.get(job_id)
            if running is not None:  # a second DELETE: the first one's task goes on
                return running
            mark = status.state != "failed"
            if mark:  # durable: a restart goes on stopping them (resume)
                await asyncio.to_thread(self.store.set_state, job_id, CANCELLING)
            return self._stop_batches(job_id, mark=mark)

    def _stop_batches(self, job_id: str, *, mark: bool) -> asyncio.Task[ApiError | None]:
        stopping = asyncio.get_running_loop().create_task(
            self._stopped(job_id, mark=mark), name=f"job-{job_id}-cancel"
        )
        self._stopping[job_id] = stopping
        stopping.add_done_callback(lambda _: self._stopping.pop(job_id, None))
        return stopping

    async def _stopped(self, job_id: str, *, mark: bool) -> ApiError | None:
        """Cancel the job's batches at the API, wait for every one to stop, join what
        each finished and delete the run's files there (:func:`cancel_run`), then mark
        the job cancelled (``mark``; until then it is ``cancelling``, which a restart
        resumes). A step the API could not take now (a timeout, a 5xx, a dropped
        connection) is tried again with the run's doubling pause; one it refuses for
        good ends the job cancelled with that error, which is returned."""
        from embed2prompt.batch_api import cancel_run
        from embed2prompt.batch_api.files import poll_pauses

        status = await asyncio.to_thread(self.store.status, job_id)
        if status is None:
            return None
        options = status.options
        settings = self._pipeline_for(options["rate_limit_tier"], options.get("aligner")).settings
        folder = self.store.batch_folder(job_id)

        def say(message: str) -> None:
            log.info("job %s: %s", job_id, message)

        pauses = poll_pauses(settings)
        error: str | None = None
        refused: ApiError | None = None
        while True:
            try:
                cancelled = await cancel_run(folder, settings, wait_s=math.inf, say=say)
            except TransientError as problem:
                log.warning("job %s: stopping its batches: %s; trying again", job_id, problem)
                await asyncio.sleep(next(pauses))
                continue
            except ApiError as problem:
                refused = problem
                error = f"its batches could not be cancelled at the API: {problem}"
                break
            except Exception as problem:  # the state file unreadable, the disk full, ...
                log.exception("job %s: stopping its batches failed", job_id)
                error = f"its batches could not be stopped: {type(problem).__name__}: {problem}"
                break
            if cancelled.still_at_server:
                error = (
                    f"the files of {cancelled.still_at_server} batches could not be deleted "
                    "at the API; DELETE the job again to retry"
                )
            break
        if mark:
            await asyncio.to_thread(self.store.set_state, job_id, "cancelled", error)
        elif error is not None:
            log.warning("job %s: %s", job_id, error)
        return refused

    async def shutdown(self) -> None:
        """Stop every job where it is; each stays resumable (state unchanged)."""
        tasks: list[asyncio.Task[Any]] = [*self._tasks.values(), *self._stopping.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        status = await asyncio.to_thread(self.store.status, job_id)
        if status is None:
            return
        options: dict[str, Any] = status.options
        pipeline = self._pipeline_for(options["rate_limit_tier"], options.get("aligner"))
        await asyncio.to_thread(self.store.set_state, job_id, "running")
        try:
            if options.get("mode") == "batch":
                await self._run_batch(job_id, status.total, options, pipeline)
            while True:
                indices, vectors = await asyncio.to_thread(self.store.pending, job_id, CHUNK)
                if not indices:
                    break
                stream = pipeline.stream_prompts(
                    vectors,
                    max_concurrent=options["max_concurrent"],
                    evaluate_quality=options["evaluate_quality"],
                    generate_variants=options["generate_variants"],
                    refinement_steps=options.get("refinement_steps"),  # absent: older jobs
                )
                async for result in stream:
                    index = indices[result.embedding_index]
                    row = result.model_copy(update={"embedding_index": index})
                    stored = await asyncio.to_thread(
                        self.store.save_result, job_id, index, row.model_dump(mode="json")
                    )
                    if stored:
                        self._on_results([result])
        # A CancelledError (cancel() set the state, or a shutdown left it resumable) is
        # not an Exception and passes through.
        except Exception as error:  # the job cannot go on (its items' own errors never land here)
            log.exception("job %s failed", job_id)
            message = f"{type(error).__name__}: {error}"
            await asyncio.to_thread(self.store.set_state, job_id, "failed", message)
            return
        # A cancel arrives only at an await above, as this task's CancelledError.
        await asyncio.to_thread(self.store.set_state, job_id, "completed")

    async def _run_batch(
        self, job_id: str, total: int, options: dict[str, Any], pipeline: ParallelPromptGenerator
    ) -> None:
        """A job in ``"mode": "batch"``: its evaluations through OpenAI's Batch API, the
        run's state in :meth:`JobStore.batch_folder` (so a restart resumes it without
        uploading or paying twice). The run's own state-file steps are quick SQLite calls
        made on the event loop; the job store's, which the run calls back for, go through
        :class:`BatchRunStorage`'s thread. The hours go into waiting on the batches."""
        from embed2prompt.batch_api import BatchApiRun

        settings = pipeline.settings
        async with BatchRunStorage(self.store, job_id, self._on_results) as storage:
            run = BatchApiRun(
                storage.rows,
                total,
                self.store.batch_folder(job_id),
                pipeline.inference_engine,
                settings,
                variants=settings.num_variants if options["generate_variants"] else 0,
                emit=storage.emit,
                is_emitted=storage.is_emitted,
                on_event=lambda message: log.info("job %s: %s", job_id, message),
            )
            try:
                # A cancel or a shutdown arrives as this task's cancellation, not the event.
                await run.run(asyncio.Event())
            finally:
                run.close()

"""The service's jobs in SQLite, run by a pipeline whose results the test releases one by
one, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.pipeline import PromptResult
from embed2prompt.pipeline.results import EvaluationResult
from embed2prompt.service.job_store import JobStatus, JobStore
from embed2prompt.service.jobs import JobRunner

OPTIONS = {
    "rate_limit_tier": "tier_2",
    "max_concurrent": 1,
    "evaluate_quality": False,
    "generate_variants": False,
}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ReleasedOneByOne:
    """A pipeline whose next result comes when the test puts a token in ``release``."""

    def __init__(self) -> None:
        self.release: asyncio.Queue[None] = asyncio.Queue()

    async def stream_prompts(self, vectors: Any, **_: Any) -> AsyncIterator[PromptResult]:
        for index in range(len(vectors)):
            await self.release.get()
            yield PromptResult(
                embedding_index=index,
                original_prompt=f"prompt {index}",
                original_result=EvaluationResult(
                    similarity=None, prompt_similarity=0.5, success=True, processing_time=0.1
                ),
                variants=[],
                best_variant=None,
            )


async def _settled(store: JobStore, job_id: str, state: str) -> JobStatus:
    for _ in range(500):
        status = store.status(job_id)
        assert status is not None
        if status.state == state:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {state!r}: {status}")


def test_updated_at_moves_as_each_result_lands(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[str, float, int]]:
        clock = FakeClock(1_000.0)
        store = JobStore(tmp_path / "jobs.sqlite3", clock=clock)
        job_id = store.create(np.ones((3, 4), dtype=np.float32), OPTIONS)
        pipeline = ReleasedOneByOne()
        landed = asyncio.Event()

        def pipeline_for(_tier: str, _aligner: str | None) -> Any:
            return pipeline

        runner = JobRunner(store, pipeline_for, lambda _results: landed.set())
        clock.now = 2_000.0  # started (or resumed after a restart) now
        runner.start(job_id)
        seen = []
        for now in (2_100.0, 2_250.0, 2_400.0):
            clock.now = now
            pipeline.release.put_nowait(None)
            await landed.wait()
            landed.clear()
            # The store's writes run in a worker thread: the last result's job ends a
            # moment after the result lands, so wait for the state that follows it.
            status = await _settled(store, job_id, "completed" if now == 2_400.0 else "running")
            seen.append((status.state, status.updated_at, status.done))
        await runner.shutdown()
        store.close()
        return seen

    assert asyncio.run(scenario()) == [
        ("running", 2_100.0, 1),
        ("running", 2_250.0, 2),
        ("completed", 2_400.0, 3),  # the last result, then at once the end
    ]


def test_a_result_stored_twice_changes_nothing(tmp_path: Path) -> None:
    clock = FakeClock(10.0)
    store = JobStore(tmp_path / "jobs.sqlite3", clock=clock)
    job_id = store.create(np.ones((2, 4), dtype=np.float32), OPTIONS)
    clock.now = 20.0
    assert store.save_result(job_id, 0, {"original_result": {"success": True}})
    clock.now = 30.0
    assert not store.save_result(job_id, 0, {"original_result": {"success": False}})
    status = store.status(job_id)
    assert status is not None
    assert (status.updated_at, status.done, status.succeeded) == (20.0, 1, 1)
    store.close()


def test_jobs_are_listed_newest_first_a_page_at_a_time(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    store = JobStore(tmp_path / "jobs.sqlite3", clock=clock)
    vectors = np.ones((2, 4), dtype=np.float32)
    first = store.create(vectors, OPTIONS)
    clock.now = 200.0  # two jobs created in the same instant: ordered by id
    sync, batch = (
        store.create(vectors, OPTIONS),
        store.create(vectors, {**OPTIONS, "mode": "batch"}),
    )
    tied = sorted((sync, batch), reverse=True)
    clock.now = 300.0
    newest = store.create(vectors, OPTIONS)
    store.save_result(newest, 0, {"original_result": {"success": True}})
    store.save_result(newest, 1, {"original_result": {"success": False}})
    store.set_state(first, "completed")

    listed, more = store.newest(10) or ([], True)
    assert [job.id for job in listed] == [newest, *tied, first]
    assert not more
    top = listed[0].as_dict()
    assert (top["done"], top["succeeded"], top["failed"], top["progress"]) == (2, 1, 1, 1.0)
    modes = {job.id: job.mode for job in listed}
    assert (modes[sync], modes[batch]) == ("sync", "batch")  # no mode stored: sync

    pages, before = [], None
    while True:  # two at a time, each page after the last one's oldest job
        page = store.newest(2, before=before)
        assert page is not None
        pages.append([job.id for job in page[0]])
        if not page[1]:
            break
        before = page[0][-1].id
    assert pages == [[newest, tied[0]], [tied[1], first]]
    assert [job.id for job in (store.newest(10, state="completed") or ([], False))[0]] == [first]
    assert store.newest(10, before="no-such-job") is None
    store.close()

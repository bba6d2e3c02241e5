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

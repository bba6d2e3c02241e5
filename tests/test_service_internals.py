"""The service in process, without its models: the job store kept off the event loop,
and the typed responses that leave the JSON as it was.

Each app here never runs its lifespan: a test puts the job runner (over a store in its
temporary folder) and, where a route needs one, a stand-in inverter on ``app.state``.
A store is watched (:class:`LoopWatch`) for any SQLite call made on a thread that is
running an event loop: SQLite waits on the disk, and the loop must not wait with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from embed2prompt.batch.report import report_figures
from embed2prompt.pipeline import PromptResult
from embed2prompt.pipeline.results import EvaluationResult, Summary, VariantResult
from embed2prompt.service.app import create_app
from embed2prompt.service.job_store import JobStore
from embed2prompt.service.jobs import JobRunner
from embed2prompt.service.routes.job_reports import ReportSummary, records
from embed2prompt.settings import Settings

DIMENSION = 4
OPTIONS = {
    "max_concurrent": 3,
    "rate_limit_tier": "tier_2",
    "evaluate_quality": True,
    "generate_variants": False,
    "refinement_steps": None,
    "return_metadata": True,
    "aligner": None,
    "mode": "sync",
}
# What a job stored before refinement_steps, aligner and mode were options.
OLDER_OPTIONS = {
    "rate_limit_tier": "tier_1",
    "max_concurrent": 1,
    "evaluate_quality": False,
    "generate_variants": False,
}
# Every method of the store that reaches SQLite (batch_folder only names a path).
SQLITE_METHODS = sorted(
    name
    for name, member in vars(JobStore).items()
    if callable(member) and not name.startswith("_") and name != "batch_folder"
)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopWatch:
    """Every SQLite call of ``store`` from now on, and those made on an event loop."""

    def __init__(self, store: JobStore) -> None:
        self.calls: list[str] = []
        self.on_loop: list[str] = []
        for name in SQLITE_METHODS:
            setattr(store, name, self._watched(name, getattr(store, name)))

    def _watched(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if _on_event_loop():
                self.on_loop.append(name)
            return method(*args, **kwargs)

        return watched


def _result(index: int, *, failed: bool = False) -> PromptResult:
    if failed:
        original = EvaluationResult(
            similarity=None, prompt_similarity=None, success=False, processing_time=0.1
        ).failed_with(ValueError("the generator wrote nothing"))
        return PromptResult(
            embedding_index=index,
            original_prompt=None,
            original_result=original,
            variants=[],
            best_variant=None,
        )
    variant = VariantResult(
        similarity=0.9,
        prompt_similarity=0.6,
        success=True,
        processing_time=0.3,
        prompt="a better prompt",
        source="refinement",
    )
    original = EvaluationResult(
        similarity=0.8125,
        prompt_similarity=0.5,
        success=True,
        processing_time=0.25,
        generated_text="what the generator wrote",
    )
    return PromptResult(
        embedding_index=index,
        original_prompt=f"prompt {index}",
        original_result=original,
        variants=[variant],
        best_variant=variant,
        cosine_by_step=[0.25, 0.5],
    )


def _vectors(count: int) -> np.ndarray:
    return np.ones((count, DIMENSION), dtype=np.float32)


def _app(store: JobStore) -> FastAPI:
    """An app over ``store`` whose inverter is a stand-in of ``DIMENSION``."""
    app = create_app(Settings())
    app.state.jobs = JobRunner(store, lambda _tier, _aligner: None)
    app.state.models.inverter = types.SimpleNamespace(
        dimension=DIMENSION, expects=None, embedder=types.SimpleNamespace(name="stand-in")
    )
    return app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    store = JobStore(tmp_path / "jobs.sqlite3")
    yield store
    store.close()


# --- the store off the event loop ---------------------------------------------------


def test_the_report_and_the_parquet_file_read_the_store_in_worker_threads(
    store: JobStore,
) -> None:
    empty = store.create(_vectors(2), OPTIONS)
    done = store.create(_vectors(2), OPTIONS)
    for index in range(2):
        store.save_result(done, index, _result(index).model_dump(mode="json"))
    watch = LoopWatch(store)
    client = TestClient(_app(store))
    assert client.get(f"/jobs/{empty}/report").status_code == 409  # no results yet
    assert client.get(f"/jobs/{done}/report").status_code == 200
    assert client.get(f"/jobs/{done}/results.parquet").status_code == 200
    assert "results" in watch.calls
    assert watch.on_loop == []


def test_a_refused_upload_is_deleted_in_a_worker_thread(store: JobStore) -> None:
    watch = LoopWatch(store)
    answer = TestClient(_app(store)).post(
        "/jobs/upload",
        content=b"[0.5, 0.5, 0.5, 0.5]\nnot an embedding\n",
        headers={"content-type": "application/x-ndjson"},
    )
    assert answer.status_code == 422, answer.text
    assert "line 2" in answer.json()["detail"]
    assert "discard" in watch.calls
    assert watch.on_loop == []
    assert store.newest(10) == ([], False)  # nothing left of it


def test_an_upload_cut_short_by_a_cancellation_is_still_deleted(store: JobStore) -> None:
    """The server cancels a request mid-upload (a shutdown): the job and its rows are
    deleted, off the loop, though the request's task may end before the delete does."""
    app = _app(store)
    watch = LoopWatch(store)
    first_chunk = {"type": "http.request", "body": b"[0.5, 0.5, 0.5, 0.5]\n", "more_body": True}

    async def scenario() -> None:
        chunks = [first_chunk]
        waiting = asyncio.Event()  # the route has stored the upload's job and reads on

        async def receive() -> dict[str, Any]:
            if chunks:
                return chunks.pop()
            waiting.set()
            await asyncio.Event().wait()  # the rest of the body never comes
            raise AssertionError("unreachable")

        async def send(_message: dict[str, Any]) -> None:
            pass

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/jobs/upload",
            "raw_path": b"/jobs/upload", "root_path": "", "query_string": b"",
            "headers": [(b"content-type", b"application/x-ndjson")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        request = asyncio.create_task(app(scope, receive, send))
        await asyncio.wait_for(waiting.wait(), timeout=30)
        assert (await asyncio.to_thread(store.newest, 10, state="uploading") or [[]])[0]
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request
        for _ in range(500):
            if await asyncio.to_thread(store.newest, 10) == ([], False):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the cancelled upload was never deleted")

    asyncio.run(scenario())
    assert "discard" in watch.calls
    assert watch.on_loop == []


class FakeBatchApiRun:
    """What :class:`~embed2prompt.batch_api.BatchApiRun` asks of the job store, asked
    as it asks it: synchronously, on the event loop. It reads every row (awaiting
    between rows, as its inversion does), then emits a result for each row that has
    none stored."""

    rows_seen: list[int]

    def __init__(
        self,
        rows: Callable[[], Any],
        rows_total: int,
        _folder: Path,
        _inverter: Any,
        _settings: Any,
        *,
        variants: int,
        emit: Callable[[int, str, PromptResult], None],
        is_emitted: Callable[[int], bool],
        on_event: Callable[[str], None],
    ) -> None:
        self._rows, self._total = rows, rows_total
        self._emit, self._is_emitted = emit, is_emitted
        FakeBatchApiRun.rows_seen = []

    async def run(self, _stop: asyncio.Event) -> bool:
        for row in self._rows():
            FakeBatchApiRun.rows_seen.append(row.index)
            await asyncio.sleep(0)
        for index in range(self._total):
            if not self._is_emitted(index):
                self._emit(index, str(index), _result(index))
        return True

    def close(self) -> None:
        pass


def _run_batch_job(
    store: JobStore, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str | None, list[int]]:
    """Run job ``job_id`` in batch mode through :class:`FakeBatchApiRun`; its final
    state, its error and the indices of the results ``on_results`` got."""
    import embed2prompt.batch_api

    monkeypatch.setattr(embed2prompt.batch_api, "BatchApiRun", FakeBatchApiRun)
    pipeline = types.SimpleNamespace(
        settings=types.SimpleNamespace(num_variants=2), inference_engine=None
    )
    landed: list[int] = []

    async def scenario() -> tuple[str, str | None]:
        runner = JobRunner(
            store,
            lambda _tier, _aligner: pipeline,
            lambda results: landed.extend(result.embedding_index for result in results),
        )
        runner.start(job_id)
        for _ in range(1000):
            status = await asyncio.to_thread(store.status, job_id)
            assert status is not None
            if status.state in ("completed", "failed"):
                return status.state, status.error
            await asyncio.sleep(0.01)
        raise AssertionError(f"the job never ended: {status}")

    state, error = asyncio.run(scenario())
    return state, error, landed


def test_a_batch_mode_job_reads_and_writes_the_store_in_a_worker_thread(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 1_100  # rows read in three chunks
    job_id = store.create(_vectors(total), {**OPTIONS, "mode": "batch"})
    store.save_result(job_id, 2, _result(2).model_dump(mode="json"))  # stored before a restart
    watch = LoopWatch(store)
    state, error, landed = _run_batch_job(store, job_id, monkeypatch)
    assert (state, error) == ("completed", None)
    assert FakeBatchApiRun.rows_seen == list(range(total))
    assert sorted(landed) == [index for index in range(total) if index != 2]
    assert store.results(job_id, 5, 1) == [_result(5).model_dump(mode="json")]
    assert watch.on_loop == []
    assert {"inputs_after", "result_indices", "save_result"} <= set(watch.calls)


def test_a_batch_mode_job_whose_results_cannot_be_stored_fails(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = store.create(_vectors(3), {**OPTIONS, "mode": "batch"})

    def disk_full(*_args: Any) -> bool:
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_result", disk_full)
    state, error, landed = _run_batch_job(store, job_id, monkeypatch)
    assert (state, error, landed) == ("failed", "OSError: disk full", [])


# --- typed responses, the JSON as it was ----------------------------------------------


def _schema_of(schema: dict[str, Any], path: str, method: str, status: str) -> Any:
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


def test_the_schema_names_a_model_for_each_response() -> None:
    schema = create_app(Settings()).openapi()
    components = schema["components"]["schemas"]

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    assert _schema_of(schema, "/health", "get", "200") == ref("HealthReport")
    assert _schema_of(schema, "/ready", "get", "200") == ref("ReadyReport")
    assert _schema_of(schema, "/ready", "get", "503") == ref("ReadyReport")
    assert _schema_of(schema, "/jobs/{job_id}/report", "get", "200") == ref("JobReport")
    assert components["JobReport"]["properties"]["summary"] == ref("ReportSummary")
    assert components["JobResultsPage"]["properties"]["results"]["items"] == ref("PromptResult")
    options = components["JobStatusResponse"]["properties"]["options"]
    assert options["$ref"] == ref("JobOptions")["$ref"]
    # Its fields, not "any object" (its serializer alone would say that).
    assert set(components["JobOptions"]["properties"]) == set(OPTIONS)
    backends = components["ReadyReport"]["properties"]["backends"]
    assert backends == ref("CheckedBackends")


def test_a_jobs_options_are_shown_as_stored_even_an_older_jobs(store: JobStore) -> None:
    client = TestClient(_app(store))
    for options in (OPTIONS, OLDER_OPTIONS):
        job_id = store.create(_vectors(1), options)
        shown = client.get(f"/jobs/{job_id}").json()["options"]
        assert shown == options  # no option filled in with its default


def test_results_and_the_report_are_what_the_store_holds(store: JobStore) -> None:
    job_id = store.create(_vectors(3), OPTIONS)
    rows = [_result(0).model_dump(mode="json"), _result(1, failed=True).model_dump(mode="json")]
    del rows[1]["cosine_by_step"]  # stored before results had it
    for index, row in enumerate(rows):
        store.save_result(job_id, index, row)
    assert "error" not in rows[0]["original_result"]  # present only on what failed
    client = TestClient(_app(store))
    page = client.get(f"/jobs/{job_id}/results").json()
    assert page == {"results": rows, "offset": 0, "next_offset": None}
    report = client.get(f"/jobs/{job_id}/report").json()
    summary, _figures = report_figures(records(store, job_id))
    assert report["summary"] == summary  # the figures without data left out, not null


def test_the_report_summary_has_every_figure_of_the_pipelines_summary() -> None:
    """``ReportSummary`` refuses a figure it does not know: a figure added to
    ``Summary`` must be added there too, or the report would answer 500."""
    assert set(ReportSummary.model_fields) == set(Summary.model_fields) - {"processing_time"}

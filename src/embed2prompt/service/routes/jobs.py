"""``/jobs``: batches too large for one request, stored in SQLite and run in the background.

The store's calls block on the disk, so every one made here runs in a worker thread
(``asyncio.to_thread``); the event loop goes on serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from embed2prompt.batch_api.status import status_report
from embed2prompt.errors import InputError
from embed2prompt.pipeline import PromptResult
from embed2prompt.service.dependencies import ModelsDep, SettingsDep, job_runner
from embed2prompt.service.errors import error_responses
from embed2prompt.service.jobs import JobRunner
from embed2prompt.service.schemas import JobRequest, PipelineOptions
from embed2prompt.service.uploads import (
    OPENAPI_REQUEST_BODY,
    UNSUPPORTED,
    RequestBody,
    read_vectors,
    upload_encoding,
)
from embed2prompt.service.vectors import check_vectors
from embed2prompt.settings import Settings

router = APIRouter()
log = logging.getLogger(__name__)

JobState = Literal[
    "uploading", "queued", "running", "completed", "cancelling", "cancelled", "failed"
]


class ItemError(BaseModel):
    index: int = Field(description="The item's index in the job.")
    error: str | None = Field(description="Why it failed.")


class JobCounts(BaseModel):
    """A job's state, progress and counts: what every view of a job shows."""

    id: str
    state: JobState
    total: int = Field(description="Items in the job.")
    done: int = Field(description="Items with a result, succeeded or failed.")
    succeeded: int
    failed: int
    progress: float = Field(description="done / total (1.0 for an empty job).")
    created_at: float = Field(description="Seconds since the epoch.")
    updated_at: float = Field(description="The last change: a new state or a result.")
    error: str | None = Field(description="Why the job itself failed, if it did.")


JobMode = Literal["sync", "batch"]


class JobOptions(PipelineOptions):
    """The options a job runs with, exactly as stored when it was created: a job an
    earlier version stored lacks the options added since (it runs with their defaults),
    and shows an option since retired."""

    model_config = ConfigDict(extra="allow")

    mode: JobMode = Field(default="sync", description="How its API calls are made.")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the options the job was stored with, not defaults filled in."""
        options: dict[str, Any] = handler(self)
        return {name: value for name, value in options.items() if name in self.model_fields_set}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The serializer above only leaves options out, so the fields are the schema;
        # from the serializer's signature alone pydantic would say "any object".
        return handler({key: value for key, value in schema.items() if key != "serialization"})


class JobStatusResponse(JobCounts):
    """A job's state, progress and counts, and its latest errors."""

    options: JobOptions = Field(description="The pipeline options the job runs with.")
    recent_errors: list[ItemError] = Field(description="The latest items that failed.")
    batch_api: dict[str, Any] | None = Field(
        default=None,
        description='A job in "mode": "batch": its rows inverted and finished, each '
        "stage's requests by status, and each Batch API input file's step, batch id, "
        "status and request counts.",
    )


class BatchJobRequest(JobRequest):
    """``POST /jobs``: :class:`JobRequest`, and how its API calls are made."""

    mode: JobMode = Field(
        default="sync",
        description="sync: calls as the items run; batch: the evaluations through "
        "OpenAI's Batch API (half the price, results within 24 h; needs "
        "evaluate_quality and a server whose generator is openai).",
    )


def _check_mode(mode: JobMode, options: PipelineOptions, settings: Settings) -> None:
    if mode != "batch":
        return
    if not options.evaluate_quality:
        raise InputError(
            '"mode": "batch" sends the evaluations as batches: it needs evaluate_quality true'
        )
    if options.aligner is not None:
        raise InputError('"mode": "batch" does not take an aligner yet')
    if settings.generator != "openai":
        raise InputError(
            '"mode": "batch" needs a server whose generator is openai '
            "(EMBED2PROMPT_GENERATOR=openai)"
        )


class JobSummaryResponse(JobCounts):
    """A job in the list: its state, mode and counts."""

    mode: JobMode


class JobListPage(BaseModel):
    """Jobs, newest first."""

    jobs: list[JobSummaryResponse]
    next_before: str | None = Field(
        description="Pass as ``before`` for the next (older) page; null on the last."
    )


JOBS_PAGE_DEFAULT = 20
JOBS_PAGE_MAX = 200


class JobResultsPage(BaseModel):
    """Finished items in index order, each in the seed's per-item shape."""

    results: list[PromptResult]
    offset: int
    next_offset: int | None = Field(description="The next page's offset; null on the last.")


async def _status(runner: JobRunner, job_id: str) -> JobStatusResponse:
    status = await asyncio.to_thread(runner.store.status, job_id)
    if status is None:
        shown = repr(job_id) if len(job_id) <= 64 else "with that id"  # bounded echo
        raise HTTPException(status_code=404, detail=f"no job {shown}")
    response = JobStatusResponse.model_validate(status.as_dict())
    folder = runner.store.batch_folder(job_id)
    if status.options.get("mode") == "batch" and (folder / "state.sqlite3").is_file():
        report = await asyncio.to_thread(status_report, folder)
        response = response.model_copy(update={"batch_api": report})
    return response


@router.post("/jobs", status_code=202, responses=error_responses(400, 413, 422, 503))
async def create_job(
    body: BatchJobRequest, settings: SettingsDep, models: ModelsDep, request: Request
) -> JobStatusResponse:
    """A batch too large for one request: stored, run in the background, resumable.

    At most ``max_embeddings_per_job`` embeddings, within ``max_request_bytes``."""
    limit = settings.max_embeddings_per_job
    if len(body.embeddings) > limit:
        raise InputError(
            f"{len(body.embeddings)} embeddings in one job; at most {limit} "
            "(max_embeddings_per_job)"
        )
    _check_mode(body.mode, body, settings)
    inverter = models.inverter_for(body.aligner)
    vectors = check_vectors(body.embeddings, inverter.dimension, expected=inverter.expects)
    options = body.model_dump(exclude={"embeddings"})
    runner = job_runner(request)
    job_id = await asyncio.to_thread(runner.store.create, vectors, options)
    runner.start(job_id)
    return await _status(runner, job_id)


@router.post(
    "/jobs/upload",
    status_code=202,
    openapi_extra=OPENAPI_REQUEST_BODY,
    responses=error_responses(413, 415, 422, 503),
)
async def upload_job(
    request: Request,
    options: Annotated[PipelineOptions, Query()],
    settings: SettingsDep,
    models: ModelsDep,
    mode: Annotated[JobMode, Query(description="sync, or batch: see POST /jobs")] = "sync",
) -> JobStatusResponse:
    """A job of up to ``max_embeddings_per_job`` embeddings streamed in the body as
    JSON lines (``application/x-ndjson``: an array of numbers, or an object with an
    ``embedding`` field, a line), as little-endian float32 rows
    (``application/octet-stream``), or as a ``.npy`` or ``.parquet`` file
    (``application/x-npy``, ``application/vnd.apache.parquet``); the options in the
    query string. Stored as it
    arrives; the job starts once the upload is complete."""
    encoding = upload_encoding(request.headers.get("content-type"))
    body = RequestBody(request.receive)
    if encoding is None:
        await body.drain()
        raise HTTPException(status_code=415, detail=UNSUPPORTED)
    _check_mode(mode, options, settings)
    dimension = models.inverter_for(options.aligner).dimension
    runner = job_runner(request)
    store = runner.store
    job_id = await asyncio.to_thread(store.begin_upload, {**options.model_dump(), "mode": mode})
    total = 0
    try:
        rows = read_vectors(body.chunks(), encoding, dimension, settings.max_embeddings_per_job)
        async for vectors in rows:
            await asyncio.to_thread(store.append_inputs, job_id, total, vectors)
            total += len(vectors)
    except BaseException as error:
        # This runs on cancellation too (a shutdown), where the request's task may end
        # before the delete does: shielded, the delete goes on in its thread all the
        # same, one whole transaction (and an upload left behind by a process that
        # exits first is deleted when the store next opens).
        await asyncio.shield(asyncio.to_thread(store.discard, job_id))
        if isinstance(error, Exception) and not body.finished:
            await body.drain()  # then the client, still sending, reads the error
        raise
    await asyncio.to_thread(store.finish_upload, job_id, total)
    runner.start(job_id)
    return await _status(runner, job_id)


@router.get("/jobs", responses=error_responses(404, 422))
async def list_jobs(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=JOBS_PAGE_MAX, description="Jobs on this page.")
    ] = JOBS_PAGE_DEFAULT,
    before: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="The id of the last job of the previous page (its next_before): "
            "the jobs created before it. 404 when no job has this id.",
        ),
    ] = None,
    state: Annotated[JobState | None, Query(description="Only the jobs in this state.")] = None,
) -> JobListPage:
    """Every job the service holds, newest first, a page at a time: its state, mode,
    counts and times (``GET /jobs/{id}`` has a job's options and latest errors)."""
    store = job_runner(request).store
    found = await asyncio.to_thread(store.newest, limit, before=before, state=state)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no job {before!r} to list the jobs before")
    jobs, more = found
    page = [JobSummaryResponse.model_validate(job.as_dict()) for job in jobs]
    return JobListPage(jobs=page, next_before=page[-1].id if more else None)


@router.get("/jobs/{job_id}", responses=error_responses(404, 422))
async def get_job(job_id: str, request: Request) -> JobStatusResponse:
    """State, progress, counts and the latest errors."""
    return await _status(job_runner(request), job_id)


@router.get(
    "/jobs/{job_id}/results",
    response_model=JobResultsPage,
    # Each result as stored: one an earlier version stored lacks the fields added since.
    response_model_exclude_unset=True,
    responses={
        200: {
            "content": {
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "format=jsonl: a result a line"}
                }
            }
        },
        **error_responses(404, 422),
    },
)
async def get_job_results(
    job_id: str,
    request: Request,
    offset: int = Query(default=0, ge=0, le=2**62),
    limit: int = Query(default=100, ge=1, le=1000),
    format: Literal["json", "jsonl"] = Query(default="json"),
) -> JobResultsPage | StreamingResponse:
    """Finished items in index order: a page (``json``) or all of them streamed as
    JSON lines (``jsonl``, from ``offset``)."""
    runner = job_runner(request)
    await _status(runner, job_id)  # 404 for an unknown job
    store = runner.store
    if format == "jsonl":

        def lines() -> Iterator[bytes]:  # iterated in a worker thread by Starlette
            position = offset
            while page := store.results(job_id, position, 500):
                position += len(page)
                yield b"".join(json.dumps(row).encode() + b"\n" for row in page)

        return StreamingResponse(lines(), media_type="application/x-ndjson")
    page = await asyncio.to_thread(store.results, job_id, offset, limit)
    return JobResultsPage(
        results=[PromptResult.model_validate(row) for row in page],
        offset=offset,
        next_offset=offset + len(page) if len(page) == limit else None,
    )


@router.delete("/jobs/{job_id}", responses=error_responses(404, 422, 503))
async def cancel_job(job_id: str, request: Request, settings: SettingsDep) -> JobStatusResponse:
    """Cancel a job; the results stored so far stay readable.

    A job in ``"mode": "batch"`` has its batches cancelled at the API too. It is
    ``cancelling`` until the API has stopped them (OpenAI may take minutes; a restart
    of the service goes on waiting), then what they finished is joined, its files there
    are deleted (unless ``batch_keep_files``) and it is ``cancelled``; ``batch_api``
    shows each batch's status. This answers once that is done or after
    ``batch_cancel_wait_s``, whichever comes first. A 503 when the API refused to
    cancel the batches (the job is cancelled here all the same, the error in its
    ``error``; ``DELETE`` it again to retry)."""
    runner = job_runner(request)
    await _status(runner, job_id)  # 404 for an unknown job
    stopping = await runner.cancel(job_id)
    if stopping is not None:
        done, _ = await asyncio.wait({stopping}, timeout=settings.batch_cancel_wait_s)
        refused = stopping.result() if done and not stopping.cancelled() else None
        if refused is not None:
            raise HTTPException(
                status_code=503,
                detail=f"the job is cancelled, but its batches could not be cancelled at "
                f"the API: {refused}; DELETE it again to retry",
            )
    return await _status(runner, job_id)

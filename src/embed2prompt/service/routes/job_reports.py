"""A job's results as the command line gives them: Parquet, and the report's plots.

``GET /jobs/{id}/results.parquet`` is the file ``embed2prompt invert -o out.parquet``
writes, and ``GET /jobs/{id}/report`` the summary and plots ``embed2prompt report``
draws, for the results stored so far (a running or cancelled job's too). Both read the
stored items in the command's record shape (``index``, ``id``, ``prompt``,
``prompt_similarity``, ``similarity``, ``best_variant``, ...); a job's items have no ids
of their own, so an item's id is its index.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from embed2prompt.batch.output import write_parquet
from embed2prompt.batch.report import report_figures
from embed2prompt.service.dependencies import job_runner
from embed2prompt.service.errors import error_responses
from embed2prompt.service.job_store import JobStatus, JobStore
from embed2prompt.service.uploads import PARQUET_FILE

router = APIRouter()

PAGE = 500  # stored results read at a time


class ReportFigure(BaseModel):
    title: str
    png_base64: str = Field(description="The plot as a PNG image, base64-encoded.")


class ReportSummary(BaseModel):
    """The run's summary figures: the pipeline's ``Summary`` less its processing time (a
    job's rows ran at different times). A figure the results have no data for is left
    out, not null."""

    # A figure Summary gains must be added here too (a test compares the two): refused,
    # not dropped unseen.
    model_config = ConfigDict(extra="forbid")

    total_processed: int
    successful: int
    failed: int
    average_similarity: float | None = Field(
        default=None, description="Mean cosine of the generated texts to their targets."
    )
    max_similarity: float | None = None
    min_similarity: float | None = None
    average_prompt_similarity: float | None = Field(
        default=None, description="Mean cosine of the prompts themselves to their targets."
    )
    average_best_similarity: float | None = Field(
        default=None,
        description="With variants: the mean of each row's better of original and best variant.",
    )
    average_variant_gain: float | None = Field(
        default=None, description="With variants: how much that beats the originals alone."
    )


class JobReport(BaseModel):
    """What ``embed2prompt report`` shows of a results file, for a job's results."""

    summary: ReportSummary
    figures: list[ReportFigure] = Field(
        description="Similarity histogram, prompt against generation similarity, what "
        "variants gained, time per row: those the results have data for."
    )


@router.get(
    "/jobs/{job_id}/report",
    # The summary's figures without data are left out, as embed2prompt report does.
    response_model_exclude_none=True,
    responses=error_responses(404, 409, 422),
)
async def job_report(job_id: str, request: Request) -> JobReport:
    """The report's summary and plots for the results stored so far; 409 while the job
    has none (a state of the job, not a fault of the request)."""
    store, status = await _stored_job(request, job_id)
    if status.done == 0:
        raise HTTPException(
            status_code=409, detail=f"job {job_id} has no results yet; ask again once rows are done"
        )
    summary, figures = await asyncio.to_thread(report_figures, records(store, job_id))
    return JobReport(
        summary=ReportSummary.model_validate(summary),
        figures=[
            ReportFigure(title=title, png_base64=base64.b64encode(png).decode())
            for title, png in figures
        ],
    )


@router.get(
    "/jobs/{job_id}/results.parquet",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The results stored so far, as embed2prompt invert writes them.",
            "content": {PARQUET_FILE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(404, 422),
    },
)
async def job_results_parquet(job_id: str, request: Request) -> FileResponse:
    """The results stored so far as one Parquet file, in index order."""
    store, _ = await _stored_job(request, job_id)
    folder = Path(tempfile.mkdtemp(prefix="embed2prompt-results-"))
    path = folder / f"job-{job_id}.parquet"
    try:
        await asyncio.to_thread(write_parquet, records(store, job_id), path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=PARQUET_FILE,
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def records(store: JobStore, job_id: str) -> Iterator[dict[str, Any]]:
    """The job's stored results in the command line's record shape, in index order.
    The store is read as this is iterated: iterate it in a worker thread."""
    offset = 0
    while page := store.results(job_id, offset, PAGE):
        offset += len(page)
        yield from (_record(item) for item in page)


def _record(item: dict[str, Any]) -> dict[str, Any]:
    original = item["original_result"]
    best = item.get("best_variant")
    return {
        "index": item["embedding_index"],
        "id": str(item["embedding_index"]),
        "prompt": item.get("original_prompt"),
        "prompt_similarity": original.get("prompt_similarity"),
        "similarity": original.get("similarity"),
        "best_variant": (
            {
                "prompt": best["prompt"],
                "similarity": best.get("similarity"),
                "prompt_similarity": best.get("prompt_similarity"),
            }
            if best
            else None
        ),
        "success": original["success"],
        "error": original.get("error"),
        "processing_time": original.get("processing_time"),
    }


async def _stored_job(request: Request, job_id: str) -> tuple[JobStore, JobStatus]:
    """The store and the job's status (404 when the store has no such job)."""
    store = job_runner(request).store
    status = await asyncio.to_thread(store.status, job_id)
    if status is None:
        shown = repr(job_id) if len(job_id) <= 64 else "with that id"  # bounded echo
        raise HTTPException(status_code=404, detail=f"no job {shown}")
    return store, status

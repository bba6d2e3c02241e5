"""A batch run: every row of an embeddings file through the pipeline, into a results file.

Rows are read a chunk at a time and each chunk runs through
:meth:`ParallelPromptGenerator.stream_prompts`; each row's record is written the moment
it finishes, so memory stays flat for any file size and a run stopped at any point
resumes from the rows without a record. A malformed row is that row's failure. A
graceful stop (``stop`` set: Ctrl-C) starts no new row and writes those in progress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from embed2prompt.batch.options import BatchOptions
from embed2prompt.batch.output import ResultLog
from embed2prompt.batch.readers import EmbeddingInputs, Row
from embed2prompt.batch.summary import RunningSummary
from embed2prompt.errors import InputError, LimiterUnavailableError
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.pipeline import ParallelPromptGenerator, PromptResult
from embed2prompt.pipeline.results import Summary
from embed2prompt.settings import Settings

CHUNK_ROWS = 2048  # rows in flight through the pipeline at a time (a few MB of vectors)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    summary: Summary  # over the whole output, earlier runs' rows included
    rows_total: int
    resumed: int  # rows that earlier runs had written
    written: int  # rows this run wrote
    complete: bool  # every row has a record (false after a stop)


class BatchRun:
    def __init__(
        self,
        source: EmbeddingInputs,
        output: ResultLog,
        settings: Settings,
        options: BatchOptions,
    ) -> None:
        self.source = source
        self.output = output
        self.settings = settings
        self.options = options
        self.summary = RunningSummary()

    def resume(self) -> int:
        """Read what earlier runs wrote; the number of rows already done. It needs no
        model, so an output that is not this input's is refused before one loads."""
        self.output.resume(self.summary.add, retry_failed=self.options.retry_failed)
        return int(self.output.done.sum())

    async def run(
        self,
        stop: asyncio.Event,
        inverter: EmbeddingToPromptInference,
        on_record: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> BatchOutcome:
        """Process every row without a record with ``inverter``; call :meth:`resume`
        first."""
        resumed = self.summary.processed
        started = time.perf_counter()
        written = 0

        outage: str | None = None

        def record(entry: dict[str, Any]) -> None:
            nonlocal written, outage
            if is_limiter_outage(entry):  # not the row's fault: leave it for the next run
                outage = outage or entry["error"]
                stop.set()
                return
            self.output.write(entry)
            self.summary.add(entry)
            written += 1
            on_record(entry)

        generator = ParallelPromptGenerator(
            inference_engine=inverter,
            config=self.settings,
            rate_limit_tier=self.settings.rate_limit_tier,
        )
        try:
            async with generator:
                for chunk in self._chunks():
                    if stop.is_set():
                        break
                    async for entry in records_for(chunk, generator, self.options, stop):
                        record(entry)
        finally:
            self.output.close()
        if outage is not None:
            raise LimiterUnavailableError(
                f"stopped: {outage}; the rows not done are left for the next run"
            )
        return BatchOutcome(
            summary=self.summary.summary(time.perf_counter() - started),
            rows_total=self.source.rows_total,
            resumed=resumed,
            written=written,
            complete=self.output.complete,
        )

    def _chunks(self) -> Iterator[list[Row]]:
        pending = (row for row in self.source.rows() if not self.output.done[row.index])
        while chunk := list(islice(pending, CHUNK_ROWS)):
            yield chunk


async def records_for(
    rows: list[Row],
    generator: ParallelPromptGenerator,
    options: BatchOptions,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The output record of each row, as each finishes: a malformed row's failure at
    once, then the others through the pipeline (together, so that they batch). A row
    that a limiter outage stopped gets an :func:`outage_record`, not a record."""
    inverter = generator.inference_engine
    valid, vectors = [], []
    for row in rows:
        try:
            vector = checked_vector(row, inverter)
        except InputError as error:
            yield failure_record(row, str(error))
            continue
        valid.append(row)
        vectors.append(vector)
    if not valid:
        return
    stream = generator.stream_prompts(
        np.stack(vectors),
        max_concurrent=options.concurrency,
        evaluate_quality=options.evaluate,
        generate_variants=options.variants > 0,
        num_variants=options.variants or None,
        stop=stop,
    )
    async for result in stream:
        yield record_or_outage(valid[result.embedding_index], result)


def checked_vector(row: Row, inverter: EmbeddingToPromptInference) -> np.ndarray[Any, Any]:
    """The row's one vector as the inverter expects it (an aligner's foreign dimension,
    when it has one); an :class:`InputError` says what is wrong with it."""
    if row.error is not None:
        raise InputError(row.error)
    # One vector is named "the embedding"; with an aligner, the error says what it expects.
    checked = inverter.check_inputs(row.vector)
    if len(checked) != 1:
        raise InputError(f"the row holds {len(checked)} vectors; expected one")
    vector: np.ndarray[Any, Any] = checked[0]
    return vector


def result_record(row: Row, result: PromptResult) -> dict[str, Any]:
    """The output record of a row's result (the line or Parquet row written for it)."""
    original = result.original_result
    best = result.best_variant
    return {
        "index": row.index,
        "id": row.id,
        "prompt": result.original_prompt,
        "prompt_similarity": _rounded(original.prompt_similarity),
        "similarity": _rounded(original.similarity),
        "best_variant": (
            {
                "prompt": best.prompt,
                "similarity": _rounded(best.similarity),
                "prompt_similarity": _rounded(best.prompt_similarity),
            }
            if best is not None
            else None
        ),
        "success": original.success,
        "error": original.error,
        "processing_time": round(original.processing_time, 4),
    }


def record_or_outage(row: Row, result: PromptResult) -> dict[str, Any]:
    """The row's record; its :func:`outage_record` when the result failed with a
    :class:`LimiterUnavailableError` (known by the error's type, whatever its words)."""
    original = result.original_result
    if original.error_type is not None and issubclass(original.error_type, LimiterUnavailableError):
        return outage_record(row, original.error or original.error_type.__name__)
    return result_record(row, result)


# The key that marks a row left undone by a limiter outage (records cross to the Ray
# driver as JSON, so the mark is a field set from the error's type, not its words).
_OUTAGE = "limiter_outage"


def outage_record(row: Row, error: str) -> dict[str, Any]:
    """The row could not run because the shared limiter's Redis was unreachable (a
    :class:`LimiterUnavailableError`): a failure of the run, not of the row."""
    return {**failure_record(row, error), _OUTAGE: True}


def is_limiter_outage(record: dict[str, Any]) -> bool:
    """Whether ``record`` is an :func:`outage_record`: it is not written, so the row is
    left for the next run (calls never run unlimited)."""
    return bool(record.get(_OUTAGE))


def failure_record(row: Row, error: str) -> dict[str, Any]:
    return {
        "index": row.index,
        "id": row.id,
        "prompt": None,
        "prompt_similarity": None,
        "similarity": None,
        "best_variant": None,
        "success": False,
        "error": error,
        "processing_time": 0.0,
    }


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None

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
class BatchOptions:
    concurrency: int = 10
    evaluate: bool = False
    variants: int = 0  # variants per prompt; 0: none
    retry_failed: bool = False


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
        inverter: EmbeddingToPromptInference,
        settings: Settings,
        options: BatchOptions,
    ) -> None:
        self.source = source
        self.output = output
        self.inverter = inverter
        self.settings = settings
        self.options = options
        self.summary = RunningSummary()

    def resume(self) -> int:
        """Read what earlier runs wrote; the number of rows already done."""
        self.output.resume(self.summary.add, retry_failed=self.options.retry_failed)
        return int(self.output.done.sum())

    async def run(
        self,
        stop: asyncio.Event,
        on_record: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> BatchOutcome:
        """Process every row without a record; call :meth:`resume` first."""
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
            inference_engine=self.inverter,
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
    once, then the others through the pipeline (together, so that they batch)."""
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
        yield _record(valid[result.embedding_index], result)


def checked_vector(row: Row, inverter: EmbeddingToPromptInference) -> np.ndarray[Any, Any]:
    """The row's one vector as the inverter expects it (an aligner's foreign dimension,
    when it has one); an :class:`InputError` says what is wrong with it."""
    if row.error is not None:
        raise InputError(row.error)
    try:
        checked = inverter.check_inputs(row.vector)  # with an aligner, names what it expects
    except InputError as error:  # named for one vector: say "the embedding"
        raise InputError(str(error).replace("embedding 0 ", "the embedding ", 1)) from None
    if len(checked) != 1:
        raise InputError(f"the row holds {len(checked)} vectors; expected one")
    vector: np.ndarray[Any, Any] = checked[0]
    return vector


def _record(row: Row, result: PromptResult) -> dict[str, Any]:
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


def is_limiter_outage(record: dict[str, Any]) -> bool:
    """The row failed because the shared limiter's Redis was unreachable: a failure of
    the run, not of the row, so it is not recorded (calls never run unlimited)."""
    return not record["success"] and str(record.get("error") or "").startswith(
        LimiterUnavailableError.__name__
    )


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

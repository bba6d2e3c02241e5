"""The batch run on Ray Data, for jobs that outgrow one machine.

The driver plans *shards* (ranges of rows of the input files that have no record yet)
and makes them a Ray dataset; a pool of actors, each loading the inverter once, reads
its shards' rows where it runs and turns them into records through the same pipeline as
the single-process run (:func:`embed2prompt.batch.run.records_for`); the driver streams
the records back and writes them through the same resumable output. So the output is
the single-process run's, row for row (inversion is seeded per target, not per batch;
the fluent inverter's refinement scores in bf16 where the CPU has it, whose rounding can
differ beside other rows and move a near tie), a stopped run resumes the same way, and
API limits are shared between every actor on every machine when ``redis_url`` is set
(:class:`RedisRateLimiter`); without it, each actor keeps the limits alone, and the
limits multiply with the actors.

With an aligner (``settings.aligner``), the rows are another embedder's vectors: the
driver loads the aligner once (a bad file, or one for another inverter, is one clear
error before Ray starts) and hands its arrays to every actor, so workers need no copy of
the file; each actor inverts through it with that embedder as refinement's feedback,
exactly as the single-process run does (:func:`embed2prompt.backends.aligned`).

A shard that fails as a whole inside its actor (an unreadable shard, a bug) becomes a
failure record for each of its rows: the dataset never fails for one item. A worker
machine that is lost is Ray's to recover (it restarts the actor and retries the shard);
if Ray gives up, the run stops and the same command resumes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.batch.options import BatchOptions, RayOptions
from embed2prompt.batch.output import ResultLog
from embed2prompt.batch.readers import EmbeddingFile, Row, input_files
from embed2prompt.batch.run import (
    BatchOutcome,
    failure_record,
    is_limiter_outage,
    records_for,
)
from embed2prompt.batch.summary import RunningSummary
from embed2prompt.errors import ConfigurationError, LimiterUnavailableError
from embed2prompt.inversion.alignment import Aligner
from embed2prompt.settings import Settings

log = logging.getLogger(__name__)

# Rows an actor takes at a time: enough to batch well, few enough that every actor gets
# several shards (a small input is spread over the pool rather than given to one actor).
MAX_ROWS_PER_SHARD = 256
MIN_ROWS_PER_SHARD = 16
SHARDS_PER_ACTOR = 4


def shard_size(pending_rows: int, actors: int) -> int:
    wanted = -(-pending_rows // (actors * SHARDS_PER_ACTOR))  # ceiling division
    return max(MIN_ROWS_PER_SHARD, min(MAX_ROWS_PER_SHARD, wanted))


def plan_shards(
    files: list[EmbeddingFile], done: np.ndarray[Any, Any], rows_per_shard: int
) -> Iterator[dict[str, Any]]:
    """Ranges of rows with some row not done yet, as dataset items."""
    for file in files:
        for start in range(0, file.rows_total, rows_per_shard):
            stop = min(start + rows_per_shard, file.rows_total)
            first, last = file.first_index + start, file.first_index + stop
            pending = np.flatnonzero(~done[first:last]) + first
            if len(pending):
                yield {
                    "path": str(file.path.resolve()),  # workers run elsewhere
                    "first_index": file.first_index,
                    "start": start,
                    "stop": stop,
                    "pending": pending.tolist(),
                }


class InvertShards:
    """A Ray Data actor: loads the inverter and pipeline once, then turns batches of
    shards into records (one JSON string per row). With ``aligner``, the rows are its
    foreign embedder's vectors (``settings.aligner`` is not read: the driver loaded it)."""

    def __init__(
        self,
        inverter_path: str,
        settings: Settings,
        options: BatchOptions,
        threads: int,
        aligner: Aligner | None = None,
    ) -> None:
        import torch

        from embed2prompt.backends import aligned, create_inverter
        from embed2prompt.pipeline import ParallelPromptGenerator

        torch.set_num_threads(threads)  # the actor's share of the machine's cores
        settings = settings.model_copy(update={"aligner": None})
        inverter = create_inverter(settings, model_path=inverter_path)
        if aligner is not None:
            inverter = aligned(inverter, aligner, settings)
        self._loop = asyncio.new_event_loop()  # one loop for the actor's lifetime
        self._generator = ParallelPromptGenerator(
            inference_engine=inverter, config=settings, rate_limit_tier=settings.rate_limit_tier
        )
        self._options = options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        records: list[str] = []
        for path, first_index, start, stop, pending in zip(
            batch["path"], batch["first_index"], batch["start"], batch["stop"], batch["pending"],
            strict=True,
        ):  # fmt: skip
            wanted = {int(index) for index in pending}
            try:
                rows = [
                    row
                    for row in EmbeddingFile(Path(path), int(first_index)).rows(
                        int(start), int(stop)
                    )
                    if row.index in wanted
                ]
                records += self._loop.run_until_complete(self._invert(rows))
            except Exception as error:  # the whole shard failed: each row says so
                message = f"{type(error).__name__}: {error}"
                log.exception("shard %s[%s:%s] failed", path, start, stop)
                records += [
                    json.dumps(failure_record(Row(index, str(index), None), message))
                    for index in sorted(wanted)
                ]
        return {"record": records}

    async def _invert(self, rows: list[Row]) -> list[str]:
        return [json.dumps(r) async for r in records_for(rows, self._generator, self._options)]


def run_on_ray(
    input_path: Path,
    output_path: Path,
    *,
    inverter_path: Path,
    settings: Settings,
    options: BatchOptions,
    ray_options: RayOptions | None = None,
    on_record: Callable[[dict[str, Any]], None] = lambda _: None,
    on_resume: Callable[[int, int], None] = lambda done, total: None,
) -> BatchOutcome:
    """Every row of a file (or a folder of files) without a record, on Ray."""
    import ray
    import ray.data

    from embed2prompt.inversion.inference import locate_model
    from embed2prompt.inversion.inverters import checkpoint_info

    ray_options = ray_options or RayOptions()
    inverter_path = locate_model(inverter_path)
    # A bad checkpoint or aligner is one clear error here, not an actor's.
    checkpoint = checkpoint_info(inverter_path)
    aligner = _load_aligner(
        settings.aligner, inverter_path, checkpoint.embedder_name, checkpoint.embedder_dimension
    )
    files = input_files(input_path)
    total = sum(file.rows_total for file in files)
    output = ResultLog(output_path, total)
    summary = RunningSummary()
    output.resume(summary.add, retry_failed=options.retry_failed)
    resumed = summary.processed
    on_resume(resumed, total)
    started = time.perf_counter()
    written = 0
    pending_rows = total - int(output.done.sum())
    owns_ray = not ray.is_initialized()
    outage: str | None = None
    try:
        if pending_rows:
            if owns_ray:
                ray.init(
                    address=ray_options.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=True,
                )
            threads = max(1, int(ray_options.cpus_per_actor))
            actors = ray_options.actors or max(
                1,
                int(ray.cluster_resources().get("CPU", 1) // ray_options.cpus_per_actor),  # type: ignore[no-untyped-call]
            )
            shards = list(plan_shards(files, output.done, shard_size(pending_rows, actors)))
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.execution_options.preserve_order = False
            dataset = ray.data.from_items(shards).map_batches(
                InvertShards,
                fn_constructor_args=(
                    str(inverter_path.resolve()),
                    settings,
                    options,
                    threads,
                    aligner,
                ),
                batch_size=1,
                concurrency=min(actors, len(shards)),
                num_cpus=ray_options.cpus_per_actor,
            )
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for line in batch["record"]:
                    record = json.loads(line)
                    if is_limiter_outage(record):  # left for the next run
                        outage = outage or record["error"]
                        continue
                    output.write(record)
                    summary.add(record)
                    written += 1
                    on_record(record)
    finally:
        output.close()
        if owns_ray and ray.is_initialized():
            ray.shutdown()
    if outage is not None:
        raise LimiterUnavailableError(
            f"stopped: {outage}; the rows not done are left for the next run"
        )
    return BatchOutcome(
        summary=summary.summary(time.perf_counter() - started),
        rows_total=total,
        resumed=resumed,
        written=written,
        complete=output.complete,
    )


def _load_aligner(
    path: str | None, inverter_path: Path, embedder_name: str, embedder_dimension: int
) -> Aligner | None:
    """The run's aligner, checked against the inverter's embedder before any actor starts
    (the actors check it again, as every inverter does)."""
    if path is None:
        return None
    aligner = Aligner.load(path)
    info = aligner.info
    if (info.target_name, info.target_dimension) != (embedder_name, embedder_dimension):
        raise ConfigurationError(
            f"{aligner.describe()} maps into {info.target_name} ({info.target_dimension} "
            f"dimensions), but {inverter_path} inverts {embedder_name} ({embedder_dimension})"
        )
    return aligner


def check_ray_available() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigurationError("--engine ray needs Ray: pip install 'ray[data]'") from None

"""``embed2prompt invert``: a file of embeddings in, a file of prompts out, resumably.

Ctrl-C (or SIGTERM) stops taking new rows, lets those in progress finish and be
written, and prints the command that resumes the run; a second Ctrl-C stops at once (the
output still holds only whole records). Running the same command again finishes the rows
left. An output path that cannot be written is refused before the model loads.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from embed2prompt.backends import create_embedder
from embed2prompt.batch.output import OUTPUT_FORMATS, ResultLog, check_output_path, lock_output
from embed2prompt.batch.ray_engine import RayOptions
from embed2prompt.batch.readers import EmbeddingInputs
from embed2prompt.batch.run import BatchOptions, BatchOutcome, BatchRun
from embed2prompt.batch.stopping import graceful_stop
from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.alignment import Aligner
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.settings import Settings

INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


def run_invert(
    input_path: Path,
    output_path: Path,
    *,
    inverter_path: Path,
    settings: Settings,
    options: BatchOptions,
    progress: bool,
    as_json: bool,
    ray_options: RayOptions | None = None,
    command: str | None = None,
    aligner_path: Path | None = None,
) -> int:
    """The exit code: 0 every row succeeded, 1 some failed, 130 stopped early. With
    ``ray_options``, the run goes to Ray (:mod:`embed2prompt.batch.ray_engine`).
    ``command`` is the command line that runs this again (printed after a stop). With
    ``aligner_path``, the rows are another embedder's vectors, mapped by that aligner
    (``prompt_similarity`` is then measured in the inverter's space)."""
    check_output_path(output_path, OUTPUT_FORMATS, input_path=input_path)
    aligner = Aligner.load(aligner_path) if aligner_path is not None else None
    if aligner is not None and ray_options is not None:
        raise ConfigurationError("--aligner runs on the local engine only, not with --engine ray")
    if aligner is not None and options.evaluate:
        # The quality evaluation compares a generation's embedding with the target, which
        # is in the foreign space: it needs that embedder, which an aligner does not carry.
        raise ConfigurationError("--aligner cannot be combined with --evaluate yet")
    command = command or f"embed2prompt invert {input_path} -o {output_path}"
    if ray_options is not None:
        lock_output(output_path).close()  # writable, and free: found before Ray starts
        outcome = _run_on_ray(
            input_path, output_path, inverter_path, settings, options, ray_options, progress
        )
        return _finish(output_path, outcome, as_json, command)
    source = EmbeddingInputs(input_path)
    output = ResultLog(output_path, source.rows_total)
    output.lock()  # an output that cannot be written: refused before the model loads
    embedder = create_embedder(settings) if settings.embedder != "local" else None
    inverter = EmbeddingToPromptInference(
        inverter_path,
        embedder=embedder,
        neighbours=settings.retrieval_neighbours,
        aligner=aligner,
    )
    run = BatchRun(source, output, inverter, settings, options)
    done_before = run.resume()
    if done_before:
        print(
            f"resuming: {done_before} of {source.rows_total} rows already in {output_path}",
            file=sys.stderr,
        )
    outcome = asyncio.run(_run(run, done_before, progress))
    return _finish(output_path, outcome, as_json, command)


def _finish(output_path: Path, outcome: BatchOutcome | None, as_json: bool, command: str) -> int:
    """Print the summary (or how to resume); the exit code."""
    if outcome is None:
        print(_stopped_message(output_path, None, command), file=sys.stderr)
        return INTERRUPTED
    summary = outcome.summary.model_dump(mode="json", exclude_none=True)
    if as_json:
        print(json.dumps({**summary, "rows": outcome.rows_total, "output": str(output_path)}))
    else:
        print(_summary_table(summary, outcome))
    if not outcome.complete:
        print(_stopped_message(output_path, outcome, command), file=sys.stderr)
        return INTERRUPTED
    return 1 if outcome.summary.failed else 0


def _run_on_ray(
    input_path: Path,
    output_path: Path,
    inverter_path: Path,
    settings: Settings,
    options: BatchOptions,
    ray_options: RayOptions,
    progress: bool,
) -> BatchOutcome | None:
    """The run on Ray; None if Ctrl-C stopped it (the rows written so far stay)."""
    from embed2prompt.batch.ray_engine import check_ray_available, run_on_ray

    check_ray_available()
    bar = tqdm(unit="row", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def on_resume(done: int, total: int) -> None:
        bar.reset(total=total)
        bar.update(done)
        if done:
            bar.write(f"resuming: {done} of {total} rows already in {output_path}", file=sys.stderr)

    try:
        return run_on_ray(
            input_path,
            output_path,
            inverter_path=inverter_path,
            settings=settings,
            options=options,
            ray_options=ray_options,
            on_record=lambda _: _advance(bar),
            on_resume=on_resume,
        )
    except KeyboardInterrupt:
        return None
    finally:
        bar.close()


def _advance(bar: tqdm[Any]) -> None:
    bar.update(1)


async def _run(run: BatchRun, done_before: int, progress: bool) -> BatchOutcome | None:
    """The run under Ctrl-C handling; None when a second Ctrl-C stopped it at once."""
    bar = tqdm(
        total=run.source.rows_total,
        initial=done_before,
        unit="row",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    failed = run.summary.failed

    def on_record(record: dict[str, Any]) -> None:
        nonlocal failed
        failed += not record["success"]
        bar.update(1)
        if failed:
            bar.set_postfix(failed=failed, refresh=False)

    def say(message: str) -> None:
        bar.write(message, file=sys.stderr)

    try:
        with graceful_stop("rows", say) as stop:
            return await run.run(stop, on_record)
    except asyncio.CancelledError:
        return None
    finally:
        bar.close()


def _stopped_message(output_path: Path, outcome: BatchOutcome | None, command: str) -> str:
    done = (
        f"{outcome.resumed + outcome.written} of {outcome.rows_total} rows are in {output_path}"
        if outcome is not None
        else f"the rows finished so far are in {output_path}"
    )
    return f"stopped: {done}; to finish the rest, run the same command again:\n  {command}"


def _summary_table(summary: dict[str, Any], outcome: BatchOutcome) -> str:
    labels = {
        "total_processed": "rows processed",
        "successful": "successful",
        "failed": "failed",
        "processing_time": "this run's time (s)",
        "average_similarity": "average similarity (generation)",
        "max_similarity": "max similarity",
        "min_similarity": "min similarity",
        "average_prompt_similarity": "average prompt similarity",
        "average_best_similarity": "average best similarity (with variants)",
        "average_variant_gain": "average variant gain",
    }
    lines = [(labels[key], value) for key, value in summary.items() if key in labels]
    lines.insert(1, ("of which earlier runs", outcome.resumed))
    if outcome.summary.processing_time > 0:
        rate = outcome.written / outcome.summary.processing_time
        lines.insert(5, ("rows per second (this run)", rate))
    width = max(len(label) for label, _ in lines)
    rule = "-" * (width + 14)
    body = [
        f"{label:<{width}}  {value:>12.4f}"
        if isinstance(value, float)
        else f"{label:<{width}}  {value:>12}"
        for label, value in lines
    ]
    return "\n".join([rule, *body, rule])

"""``embed2prompt invert --batch-api``: the evaluations' API calls through OpenAI's Batch API.

The options are ``invert``'s (:mod:`embed2prompt.commands.invert` registers them and
sends ``--batch-api`` here). The run's state lives in ``OUTPUT.batch-api/`` beside the
output (:mod:`embed2prompt.batch_api`): ``--status`` reads it, ``--cancel`` cancels the
run's batches at the API, and the same command again resumes the run.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from embed2prompt.backends import create_inverter
from embed2prompt.batch.output import OUTPUT_FORMATS, ResultLog, check_output_path, lock_output
from embed2prompt.batch.readers import EmbeddingInputs, Row
from embed2prompt.batch.stopping import graceful_stop
from embed2prompt.cli import INTERRUPTED
from embed2prompt.commands.outcome import report_outcome
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.settings import Settings

if TYPE_CHECKING:  # these import torch: at run time only, not for --help
    from embed2prompt.batch.options import BatchOptions
    from embed2prompt.pipeline.results import PromptResult


def run_invert_batch_api(
    input_path: Path,
    output_path: Path,
    *,
    inverter_path: Path,
    settings: Settings,
    options: BatchOptions,
    as_json: bool,
    command: str | None = None,
) -> int:
    """``invert --batch-api``: the rows inverted here, their evaluations through
    OpenAI's Batch API, the state in ``OUTPUT.batch-api/`` beside the output. The exit
    codes of :func:`~embed2prompt.commands.invert.run_invert`."""
    from embed2prompt.batch.run import BatchOutcome, result_record
    from embed2prompt.batch.summary import RunningSummary
    from embed2prompt.batch_api import BatchApiRun
    from embed2prompt.batch_api.status import state_folder

    check_output_path(output_path, OUTPUT_FORMATS, input_path=input_path)
    if not options.evaluate:
        raise ConfigurationError(
            "--batch-api sends the evaluations' calls as batches: it needs --evaluate"
        )
    if settings.generator != "openai":
        raise ConfigurationError(
            "--batch-api sends the generator's calls as batches: it needs --generator openai"
        )
    if settings.aligner is not None:
        raise ConfigurationError("--batch-api does not take an aligner yet")
    settings.require_openai_api_key()
    command = command or f"embed2prompt invert {input_path} -o {output_path} --batch-api"
    source = EmbeddingInputs(input_path)
    output = ResultLog(output_path, source.rows_total)
    output.lock()  # one run at a time, and an unwritable output refused before any work
    summary = RunningSummary()
    output.resume(summary.add, retry_failed=options.retry_failed)
    resumed = summary.processed
    inverter = create_inverter(settings, model_path=inverter_path)
    written = 0

    def emit(index: int, identifier: str, result: PromptResult) -> None:
        nonlocal written
        record = result_record(Row(index, identifier, None), result)
        output.write(record)
        summary.add(record)
        written += 1

    run = BatchApiRun(
        source.rows,
        source.rows_total,
        state_folder(output_path),
        inverter,
        settings,
        variants=options.variants,
        emit=emit,
        is_emitted=lambda index: bool(output.done[index]),
        on_event=_say,
    )
    started = time.perf_counter()

    async def main() -> bool:
        with graceful_stop("step", _say) as stop:
            return await run.run(stop)

    try:
        complete = asyncio.run(main())
    except asyncio.CancelledError:
        complete = False
    finally:
        run.close()
        output.close()
    if not complete:
        _say(
            "stopped: the batches submitted go on at OpenAI and nothing done is lost; to "
            f"pick up where the run was, run the same command again:\n  {command}\n"
            "(or add --cancel to cancel them)"
        )
        return INTERRUPTED
    outcome = BatchOutcome(
        summary=summary.summary(time.perf_counter() - started),
        rows_total=source.rows_total,
        resumed=resumed,
        written=written,
        complete=output.complete,
    )
    return report_outcome(output_path, outcome, as_json=as_json, command=command)


def show_batch_api_status(output_path: Path, *, as_json: bool) -> int:
    """``invert ... --batch-api --status``: where the run stands, from its state file."""
    from embed2prompt.batch_api.status import state_folder, status_report, status_table

    report = status_report(state_folder(output_path))
    print(json.dumps(report) if as_json else status_table(report))
    return 0


def cancel_batch_api(output_path: Path, *, settings: Settings, as_json: bool) -> int:
    """``invert ... --batch-api --cancel``: the run's batches cancelled at the API, then
    waited for (Ctrl-C stops waiting), what they finished joined and the run's files
    there deleted. 0 when that is done, 1 when some of its files could not be deleted
    (run it again), 130 when Ctrl-C stopped the wait."""
    from embed2prompt.batch_api import cancel_run
    from embed2prompt.batch_api.status import state_folder

    folder = state_folder(output_path)
    if not (folder / "state.sqlite3").is_file():
        raise InputError(f"{folder}: no Batch API run here yet")
    lock = lock_output(output_path)  # not while the run itself goes on
    try:
        cancelled = asyncio.run(cancel_run(folder, settings, wait_s=math.inf, say=_say))
    except KeyboardInterrupt:
        _say(
            "stopped waiting: the batches cancelled go on stopping at OpenAI; run the same "
            "command with --cancel again to keep what they finished and delete their files"
        )
        return INTERRUPTED
    finally:
        lock.close()
    if as_json:
        print(json.dumps({"cancelled": cancelled.batches, "left": cancelled.still_at_server}))
    else:
        if settings.batch_keep_files:
            where = "their files are kept at OpenAI (--keep-batch-files)"
        elif cancelled.still_at_server:
            where = (
                f"{cancelled.still_at_server} input files could not be deleted at OpenAI "
                "yet: run this again"
            )
        else:
            where = "the run holds no files at OpenAI any more"
        print(
            f"cancelled {_batches(len(cancelled.batches))}; {where}. The same command "
            "without --cancel resumes the run."
        )
    return 1 if cancelled.still_at_server else 0


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

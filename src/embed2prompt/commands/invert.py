"""``embed2prompt invert``: a file of embeddings in, a file of prompts out, resumably.

Ctrl-C (or SIGTERM) stops taking new rows, lets those in progress finish and be
written, and prints the command that resumes the run; a second Ctrl-C stops at once (the
output still holds only whole records). Running the same command again finishes the rows
left. An output path that cannot be written is refused before the model loads.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embed2prompt.backends import create_inverter
from embed2prompt.batch.options import BatchOptions, RayOptions
from embed2prompt.batch.output import OUTPUT_FORMATS, ResultLog, check_output_path, lock_output
from embed2prompt.batch.readers import EmbeddingInputs
from embed2prompt.batch.stopping import graceful_stop
from embed2prompt.cli import _command_line, _default, _settings
from embed2prompt.commands.outcome import report_outcome
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.alignment import Aligner
from embed2prompt.settings import Settings

if TYPE_CHECKING:  # these import torch: at run time only, not for --help
    from tqdm import tqdm

    from embed2prompt.batch.run import BatchOutcome, BatchRun
    from embed2prompt.inversion.inference import EmbeddingToPromptInference

SPACE_SAMPLE_ROWS = 16  # rows whose first pass says whether the inputs fit the inverter


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "invert",
        help="turn a file of embeddings back into prompts (resumable)",
        description=(
            "Invert every row of INPUT (.npy rows; .jsonl with field 'embedding' and optional\n"
            "'id'; .parquet with a list column 'embedding' and optional 'id') into OUTPUT\n"
            "(.jsonl or .parquet): index, id, prompt, prompt_similarity, similarity,\n"
            "best_variant, success, error, processing_time. Rows are streamed (flat memory)\n"
            "and written as they finish. Run the same command again after a crash or Ctrl-C\n"
            "to finish the rows left. Exit 0 all rows succeeded, 1 some failed (see their\n"
            "error), 2 bad usage, unreadable input or an output that cannot be written,\n"
            "130 stopped early.\n\n"
            "examples:\n"
            "  embed2prompt invert vectors.npy -o prompts.jsonl\n"
            "  embed2prompt invert vectors.parquet -o prompts.parquet --evaluate --variants 3 \\\n"
            "      --generator openai --model gpt-4o-mini --tier tier_2 --concurrency 20\n"
            "  embed2prompt invert shards/ -o prompts.parquet --engine ray --ray-address auto"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", type=Path, help="a .npy, .jsonl or .parquet file of embeddings, or a folder"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="a .jsonl or .parquet file"
    )
    parser.add_argument(
        "--inverter",
        type=Path,
        help=f"the inversion model checkpoint ({_default('model_path')})",
    )
    parser.add_argument(
        "--aligner",
        type=Path,
        help="an aligner from `embed2prompt align`: the input is that embedder's vectors "
        "(default: EMBED2PROMPT_ALIGNER, else none)",
    )
    parser.add_argument(
        "--feedback",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with an aligner that records its embedder, refine by cosine in that embedder's "
        "space (default: on; --no-feedback: in the mapped space, no calls to it)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help=f"rows in progress at once (default {BatchOptions().concurrency})",
    )
    parser.add_argument(
        "--evaluate",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="judge each prompt by what the generator writes from it (default: off)",
    )
    parser.add_argument(
        "--variants", type=int, default=0, help="refined variants per prompt (default 0: none)"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="when resuming, run failed rows again"
    )
    parser.add_argument(
        "--tier", help=f"OpenAI rate-limit tier, tier_1..tier_5 ({_default('rate_limit_tier')})"
    )
    parser.add_argument("--rpm", type=float, help="requests per minute (overrides the tier's)")
    parser.add_argument("--tpm", type=float, help="tokens per minute (overrides the tier's)")
    parser.add_argument(
        "--embedder",
        choices=["local", "openai"],
        help=f"the embedder the inverter was trained for ({_default('embedder')})",
    )
    parser.add_argument(
        "--embedding-model", help="the API embedding model (with --embedder openai)"
    )
    parser.add_argument("--generator", choices=["local", "openai"], help=_default("generator"))
    parser.add_argument(
        "--model", help="the generator's model name (default depends on --generator)"
    )
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: OPENAI_BASE_URL)")
    parser.add_argument(
        "--steps",
        type=int,
        help=f"refinement steps per prompt ({_default('refinement_steps')})",
    )
    parser.add_argument(
        "--beam", type=int, help=f"sequence beam width ({_default('refinement_beam')})"
    )
    parser.add_argument(
        "--edits",
        type=int,
        help=f"word edits tried per hypothesis a step ({_default('refinement_edits')})",
    )
    parser.add_argument(
        "--fluency",
        type=float,
        help="weight of readability against cosine in refinement, 0: cosine alone "
        f"({_default('refinement_fluency')})",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        help="training texts from the model's prompt bank among the first guesses "
        f"({_default('retrieval_neighbours')})",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: Ray Data, on a local instance or a cluster",
    )
    parser.add_argument(
        "--ray-address", help="an existing Ray cluster (auto, ray://HOST:10001); default: local"
    )
    parser.add_argument(
        "--actors", type=int, help="Ray actors inverting at once (default: one per CPU)"
    )
    parser.add_argument(
        "--batch-api",
        action="store_true",
        help="send the evaluations' API calls through OpenAI's Batch API (half the price, "
        "up to 24 h; needs --evaluate and --generator openai); resumable from "
        "OUTPUT.batch-api/",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="with --batch-api: show where the run's batches stand, and do nothing else",
    )
    parser.add_argument(
        "--cancel",
        action="store_true",
        help="with --batch-api: cancel the run's batches at OpenAI, keep what they "
        "finished, delete the run's files there, and do nothing else (the same command "
        "without --cancel resumes the run)",
    )
    parser.add_argument(
        "--keep-batch-files",
        action="store_true",
        default=None,
        help="with --batch-api: keep the batches' input, output and error files at OpenAI "
        "(default: EMBED2PROMPT_BATCH_KEEP_FILES, else deleted once their results are in)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = _settings(
        rate_limit_tier=args.tier,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        embedder=args.embedder,
        embedding_model=args.embedding_model,
        generator=args.generator,
        generator_model=args.model,
        openai_base_url=args.base_url,
        refinement_steps=args.steps,
        refinement_beam=args.beam,
        refinement_edits=args.edits,
        refinement_fluency=args.fluency,
        retrieval_neighbours=args.neighbours,
        feedback=args.feedback,
        batch_keep_files=args.keep_batch_files,
    )
    if args.status or args.cancel or args.batch_api:
        from embed2prompt.commands import invert_batch_api

        if args.status:
            return invert_batch_api.show_batch_api_status(args.output, as_json=args.json)
        if args.cancel:
            return invert_batch_api.cancel_batch_api(
                args.output, settings=settings, as_json=args.json
            )
        if args.engine != "local" or args.aligner is not None:
            raise ConfigurationError("--batch-api runs on the local engine, no aligner")
        return invert_batch_api.run_invert_batch_api(
            args.input,
            args.output,
            inverter_path=args.inverter or Path(settings.model_path),
            settings=settings,
            options=BatchOptions(
                evaluate=args.evaluate, variants=args.variants, retry_failed=args.retry_failed
            ),
            as_json=args.json,
            command=_command_line(args.argv),
        )
    return run_invert(
        args.input,
        args.output,
        inverter_path=args.inverter or Path(settings.model_path),
        settings=settings,
        options=BatchOptions(
            evaluate=args.evaluate,
            variants=args.variants,
            retry_failed=args.retry_failed,
            **({"concurrency": args.concurrency} if args.concurrency is not None else {}),
        ),
        progress=not args.no_progress,
        as_json=args.json,
        ray_options=(
            RayOptions(address=args.ray_address, actors=args.actors)
            if args.engine == "ray"
            else None
        ),
        command=_command_line(args.argv),
        aligner_path=args.aligner,
    )


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
    an aligner (``aligner_path``, else the settings'), the rows are another embedder's
    vectors, mapped by that aligner; when the aligner records how to call that embedder
    (and ``settings.feedback`` is on), refinement, ``prompt_similarity`` and the quality
    evaluation are measured in its space, else in the mapped space (said on stderr)."""
    check_output_path(output_path, OUTPUT_FORMATS, input_path=input_path)
    if aligner_path is not None:
        settings = settings.model_copy(update={"aligner": str(aligner_path)})
    if settings.aligner is not None:
        Aligner.load(settings.aligner)  # a missing or bad file: one clear error, first
    from embed2prompt.batch.run import BatchRun  # the pipeline, PyTorch: after the checks

    command = command or f"embed2prompt invert {input_path} -o {output_path}"
    if ray_options is not None:
        lock_output(output_path).close()  # writable, and free: found before Ray starts
        outcome = _run_on_ray(
            input_path, output_path, inverter_path, settings, options, ray_options, progress
        )
        return report_outcome(output_path, outcome, as_json=as_json, command=command)
    source = EmbeddingInputs(input_path)
    run = BatchRun(source, ResultLog(output_path, source.rows_total), settings, options)
    # An output that cannot be written, or another input's: refused before the model loads.
    done_before = run.resume()
    inverter = create_inverter(settings, model_path=inverter_path)
    _say_where_similarity_is_measured(inverter)
    warning = _space_warning(source, inverter)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    if done_before:
        print(
            f"resuming: {done_before} of {source.rows_total} rows already in {output_path}",
            file=sys.stderr,
        )
    outcome = asyncio.run(_run(run, inverter, done_before, progress))
    return report_outcome(output_path, outcome, as_json=as_json, command=command)


def _say_where_similarity_is_measured(inverter: EmbeddingToPromptInference) -> None:
    if inverter.aligner is None:
        return
    name = inverter.aligner.info.foreign_name
    if inverter.space == "foreign":
        print(
            f"refining with {name} as feedback: prompt_similarity is the cosine in its space",
            file=sys.stderr,
        )
    else:
        print(
            f"refining in the mapped space ({inverter.embedder.name}): the aligner does not "
            f"say how to call {name}, or feedback is off; prompt_similarity is the cosine "
            "to the mapped target",
            file=sys.stderr,
        )


def _space_warning(source: EmbeddingInputs, inverter: EmbeddingToPromptInference) -> str | None:
    """Whether the first rows look like another embedder's vectors: one pass over a few
    of them (about a second) before hours of work, rather than a note at the end."""
    vectors = []
    for row in itertools.islice(source.rows(), SPACE_SAMPLE_ROWS * 4):
        try:
            vectors.append(inverter.check_inputs(row.vector)[0])
        except (InputError, TypeError, ValueError):
            continue  # the run reports bad rows itself
        if len(vectors) == SPACE_SAMPLE_ROWS:
            break
    if not vectors or inverter.aligner is not None:
        return None
    results = inverter.invert_batch(np.stack(vectors))  # one pass: the default search
    return inverter.space_warning([result.trace[0] for result in results])


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
    from tqdm import tqdm

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


async def _run(
    run: BatchRun, inverter: EmbeddingToPromptInference, done_before: int, progress: bool
) -> BatchOutcome | None:
    """The run under Ctrl-C handling; None when a second Ctrl-C stopped it at once."""
    from tqdm import tqdm

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
            return await run.run(stop, inverter, on_record)
    except asyncio.CancelledError:
        return None
    finally:
        bar.close()

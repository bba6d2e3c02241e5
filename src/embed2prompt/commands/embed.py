"""``embed2prompt embed``: a file of texts in, a file of embeddings out, resumably.

Texts are embedded a chunk at a time, in input order, and each chunk is written as it
comes back (:class:`~embed2prompt.textio.EmbeddingLog`), so a run stopped in any way
resumes from the first text not written. Ctrl-C (or SIGTERM) lets the chunk in progress
finish and be written, then prints the command that resumes; a second Ctrl-C stops at
once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from embed2prompt.backends import create_embedder
from embed2prompt.batch.stopping import graceful_stop
from embed2prompt.cli import INTERRUPTED, _command_line, _default, _settings
from embed2prompt.settings import Settings
from embed2prompt.textio import EmbeddingLog, TextRecord, read_texts

# Texts per embed() call for the local model: it batches any number, and 256 keeps the
# progress bar moving and a Ctrl-C quick.
LOCAL_CHUNK = 256
# The OpenAI embedder packs one call's texts into requests of up to 2,048 inputs and
# 300,000 tokens and sends up to 8 of them at once: a call holds 8 full requests.
OPENAI_REQUESTS_PER_CHUNK = 8
# Shorter inputs finish too fast for a progress bar to help.
PROGRESS_FROM = 1_000


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed a file of texts",
        description=(
            "Embed every text of INPUT (.txt: one a line; .jsonl: field 'text', optional 'id')\n"
            "into OUTPUT (.npy: rows in input order; .jsonl: id, text, embedding). Resumable:\n"
            "embeddings are written as they come, and running the same command again after a\n"
            "crash, a kill or Ctrl-C embeds only the texts left. OpenAI requests are packed\n"
            "up to 2,048 inputs and 300,000 tokens. Exit 0 done, 2 bad usage, unreadable\n"
            "input or an output that cannot be written, 130 stopped early.\n\n"
            "examples:\n"
            "  embed2prompt embed questions.txt -o questions.npy\n"
            "  embed2prompt embed docs.jsonl -o docs.jsonl \\\n"
            "      --embedder openai --model text-embedding-3-small   # needs OPENAI_API_KEY"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="a .txt or .jsonl file of texts")
    parser.add_argument("-o", "--output", type=Path, required=True, help="a .npy or .jsonl file")
    parser.add_argument("--embedder", choices=["local", "openai"], help=_default("embedder"))
    parser.add_argument("--model", help="embedding model name (default depends on --embedder)")
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: OPENAI_BASE_URL)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return run_embed(
        args.input,
        args.output,
        settings=_settings(
            embedder=args.embedder, embedding_model=args.model, openai_base_url=args.base_url
        ),
        progress=not args.no_progress,
        command=_command_line(args.argv),
    )


def run_embed(
    input_path: Path,
    output_path: Path,
    *,
    settings: Settings,
    progress: bool,
    command: str | None = None,
) -> int:
    """The exit code: 0 every text is embedded, 130 stopped early (run ``command``, the
    command line of this run, again to finish)."""
    output = EmbeddingLog(output_path, input_path=input_path)
    records = read_texts(input_path)
    done_before = output.resume(records)  # takes the output: refused before the model loads
    try:
        if done_before:
            print(
                f"resuming: {done_before} of {len(records)} texts already in {output_path}",
                file=sys.stderr,
            )
        truncated = (
            asyncio.run(_embed_rest(records, output, settings, progress))
            if not output.complete
            else 0
        )
    finally:
        output.close()
    if truncated:
        print(
            f"note: {truncated} texts were longer than the model's window and were truncated",
            file=sys.stderr,
        )
    if not output.complete:
        command = command or f"embed2prompt embed {input_path} -o {output_path}"
        print(
            f"stopped: {output.done} of {len(records)} texts are embedded "
            f"({output.journal}); to finish the rest, run the same command again:\n  {command}",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(
        f"embedded {len(records) - done_before} texts into {output_path}"
        + (f" ({len(records)} in all)" if done_before else ""),
        file=sys.stderr,
    )
    return 0


def chunk_size(settings: Settings) -> int:
    """Texts per ``embed()`` call for the settings' embedder."""
    if settings.embedder == "openai":
        from embed2prompt.embedders.openai import MAX_INPUTS_PER_REQUEST

        return MAX_INPUTS_PER_REQUEST * OPENAI_REQUESTS_PER_CHUNK
    return LOCAL_CHUNK


async def _embed_rest(
    records: list[TextRecord], output: EmbeddingLog, settings: Settings, progress: bool
) -> int:
    """Embed and write the texts after those done; the number truncated. Returns early
    after a Ctrl-C (the chunk in progress written), or with nothing more written after a
    second one."""
    from tqdm import tqdm

    show = progress and len(records) >= PROGRESS_FROM
    bar = tqdm(
        total=len(records), initial=output.done, unit="text", disable=not show, file=sys.stderr
    )

    def say(message: str) -> None:
        bar.write(message, file=sys.stderr)

    truncated = 0
    try:
        with graceful_stop("texts", say) as stop:
            embedder = create_embedder(settings)
            try:
                size = chunk_size(settings)
                for start in range(output.done, len(records), size):
                    if stop.is_set():
                        break
                    chunk = records[start : start + size]
                    texts = [record.text for record in chunk]
                    cut = embedder.truncated(texts)
                    output.write(chunk, await embedder.embed(texts), cut)
                    truncated += sum(cut)
                    bar.update(len(chunk))
            finally:
                await embedder.aclose()
    except asyncio.CancelledError:
        pass  # a second Ctrl-C: what was written stays
    finally:
        bar.close()
    return truncated

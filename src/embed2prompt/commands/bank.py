"""``embed2prompt bank add``: put texts like those you invert into a model's prompt bank.

The bank (retrieval.py) gives the search its first guesses, so texts of the kind a user
inverts (their documents, their prompts) bring the start, and with it the end, closer to
their targets, with no retraining. The texts are embedded with the model's embedder and
coded against the bank's centre; a model without a bank gets one made of them (whose
centre, the mean of those first texts, stays the reference for all later additions: start
a new bank with a few hundred texts or more).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

from embed2prompt.backends import create_embedder
from embed2prompt.cli import _settings
from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.embedders.base import Embedder, Vectors
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.retrieval import PromptBank, bank_path
from embed2prompt.settings import Settings
from embed2prompt.textio import read_texts

_CHUNK = 4096  # texts embedded at a time, for the progress report


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "bank",
        help="add texts like those you invert to a model's prompt bank",
        description=(
            "Embed texts (one a line) with the model's embedder and add them to its prompt\n"
            "bank, the training texts the search starts from: texts of the kind you invert\n"
            "bring prompts closer to their targets without retraining. The bank keeps them\n"
            "verbatim: do not share a model with a bank of private text.\n\n"
            "example:\n"
            "  embed2prompt bank add my_prompts.txt --model runs/minilm/model.pt"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["add"])
    parser.add_argument(
        "files", type=Path, nargs="+", help=".txt (one text a line) or .jsonl (field text)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the checkpoint whose bank grows (no default: the repository's model is shared)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    run_bank_add(args.model, args.files, settings=_settings())
    return 0


def run_bank_add(model: Path, files: list[Path], *, settings: Settings) -> None:
    from embed2prompt.inversion.inference import locate_model
    from embed2prompt.inversion.inverters import checkpoint_info  # torch: not for --help

    model = locate_model(model)
    info = checkpoint_info(model)  # either kind: the small decoder or the fluent inverter
    # .txt (one text a line) or .jsonl (field text), as `embed` reads them.
    read = [record.text.strip() for file in files for record in read_texts(file)]
    # A bank proposes its texts as first guesses: one holding an evaluation text would
    # hand the evaluation its answers.
    texts = [text for text in read if not is_evaluation_text(text)]
    if not texts:
        raise InputError(
            f"all {len(read):,} texts read are evaluation or demo texts, which no prompt "
            "bank may hold; expected other texts"
        )
    embedder = create_embedder(settings)
    if embedder.name != info.embedder_name or embedder.dimension != info.embedder_dimension:
        raise ConfigurationError(
            f"{model} inverts {info.embedder_name} ({info.embedder_dimension} dimensions) "
            f"but the configured embedder is {embedder.name} ({embedder.dimension}); "
            "choose the model's embedder (EMBED2PROMPT_EMBEDDER, EMBED2PROMPT_EMBEDDING_MODEL)"
        )
    path = bank_path(model)
    existing = PromptBank.load(path) if path.is_file() else None
    if existing is not None and (
        existing.embedder_name != info.embedder_name
        or existing.dimension != info.embedder_dimension
    ):
        raise ConfigurationError(
            f"{path} was built with {existing.embedder_name} ({existing.dimension} "
            f"dimensions), not the model's {info.embedder_name}; remove it to start a new bank"
        )
    vectors = asyncio.run(_embed(embedder, texts))
    if existing is not None:
        bank, added = existing.extended(texts, vectors)
    else:
        bank = PromptBank.build(info.embedder_name, texts, vectors)
        added = len(bank)
    try:
        bank.save(path)
    except OSError as error:
        raise ConfigurationError(f"cannot write the prompt bank {path}: {error}") from None
    left_out = len(read) - len(texts)
    skipped = f"; {left_out:,} evaluation texts left out" if left_out else ""
    print(
        f"new texts: {added:,} (of {len(read):,} read; the rest were in the bank or "
        f"repeated{skipped}); {path} now holds {len(bank):,}",
        file=sys.stderr,
    )


async def _embed(embedder: Embedder, texts: list[str]) -> Vectors:
    parts = []
    for start in range(0, len(texts), _CHUNK):
        parts.append(await embedder.embed(texts[start : start + _CHUNK]))
        print(f"embedded {min(start + _CHUNK, len(texts)):,} of {len(texts):,}", file=sys.stderr)
    await embedder.aclose()
    return np.concatenate(parts)

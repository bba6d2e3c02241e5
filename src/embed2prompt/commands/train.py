"""``embed2prompt train``: train an inverter for the chosen embedder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embed2prompt.backends import create_embedder
from embed2prompt.cli import _at_least_one, _settings
from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.errors import InputError
from embed2prompt.inversion.retrieval import PromptBank
from embed2prompt.settings import Settings
from embed2prompt.textio import read_texts

if TYPE_CHECKING:  # training imports torch: at run time only, not for --help
    from embed2prompt.inversion.prefix_training import PrefixTrainingOptions
    from embed2prompt.inversion.training import TrainingOptions


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train",
        help="train an inverter for an embedder",
        description=(
            "Train the embedding-to-text model on a corpus (see corpus build), for the\n"
            "local embedder or an API one. Embeddings are cached beside the checkpoint and\n"
            "training resumes from the last checkpoint when run again. Options not given\n"
            "keep the trainer's defaults (TrainingOptions, or PrefixTrainingOptions with\n"
            "--fluent).\n\n"
            "example:\n"
            "  embed2prompt train --corpus data/corpus --out runs/minilm/model.pt --steps 20000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--fluent",
        action="store_true",
        help="train the fluent inverter (an adapter into the frozen SmolLM2) instead",
    )
    # The --fluent options default to None (not given): their defaults are
    # PrefixTrainingOptions' and AdapterConfig's, and one given without --fluent is an error.
    parser.add_argument(
        "--texts",
        type=Path,
        action="append",
        help="--fluent: a .txt or .jsonl file of training texts (repeatable)",
    )
    parser.add_argument(
        "--bank",
        type=Path,
        action="append",
        help="--fluent: a prompt bank (NAME.bank.npz) whose texts to train on (repeatable)",
    )
    parser.add_argument(
        "--emphasis",
        type=_at_least_one,
        help="--fluent: times an epoch each --texts text is seen (bank texts: once an epoch)",
    )
    parser.add_argument(
        "--prefix-length",
        type=_at_least_one,
        help="--fluent: vectors the embedding becomes (default: AdapterConfig's)",
    )
    parser.add_argument(
        "--adapter-hidden",
        type=_at_least_one,
        help="--fluent: the adapter's hidden width (default: AdapterConfig's)",
    )
    parser.add_argument(
        "--lora-rank",
        type=_at_least_one,
        help="--fluent: also train rank-N LoRA updates to the LM's attention (default: none)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="--fluent: start from this fluent checkpoint's adapter (a new run only)",
    )
    parser.add_argument(
        "--device",
        help="--fluent: where to train: cpu (default), cuda or cuda:N; the checkpoint is the same",
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--out", type=Path, default=Path("runs/inverter/model.pt"))
    # Unset options keep the trainer's own defaults, which differ: TrainingOptions' for
    # the small decoder, PrefixTrainingOptions' with --fluent.
    parser.add_argument("--steps", type=int, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, help="texts a step")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate")
    parser.add_argument("--eval-every", type=int, help="steps between validations and checkpoints")
    parser.add_argument("--max-texts", type=int, help="use only the first N training texts")
    parser.add_argument(
        "--embedding-noise", type=float, help="Gaussian noise on the training embeddings"
    )
    parser.add_argument("--embedder", choices=["local", "openai"], help="default: local")
    parser.add_argument("--model", help="embedding model name")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    fluent_only = {
        "--texts": args.texts,
        "--bank": args.bank,
        "--emphasis": args.emphasis,
        "--prefix-length": args.prefix_length,
        "--adapter-hidden": args.adapter_hidden,
        "--lora-rank": args.lora_rank,
        "--init-from": args.init_from,
        "--device": args.device,
    }
    # What both trainers take from the command line alike.
    common = _given(
        {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "embedding_noise": args.embedding_noise,
            "threads": args.threads,
        }
    )
    settings = _settings(embedder=args.embedder, embedding_model=args.model)
    progress = not args.no_progress
    if args.fluent:
        from embed2prompt.inversion.prefix_lm import AdapterConfig
        from embed2prompt.inversion.prefix_training import PrefixTrainingOptions

        sizes = {
            "prefix_length": args.prefix_length,
            "hidden": args.adapter_hidden,
            "lora_rank": args.lora_rank,
        }
        given = {
            "device": args.device,
            "emphasis": args.emphasis,
            "save_every": args.eval_every,
            "init_from": args.init_from,
        }
        options = PrefixTrainingOptions(
            checkpoint=args.out, adapter=AdapterConfig(**_given(sizes)), **common, **_given(given)
        )
        run_train_fluent(
            options,
            settings=settings,
            text_files=args.texts or [],
            banks=args.bank or [],
            progress=progress,
        )
    else:
        misplaced = [flag for flag, value in fluent_only.items() if value is not None]
        if misplaced:
            raise InputError(
                f"{', '.join(misplaced)} only apply to the fluent inverter; add --fluent"
            )
        from embed2prompt.inversion.training import TrainingOptions

        given = {"eval_every": args.eval_every, "max_texts": args.max_texts}
        small = TrainingOptions(corpus=args.corpus, checkpoint=args.out, **common, **_given(given))
        run_train(small, settings=settings, progress=progress)
    return 0


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line (the rest keep their defaults)."""
    return {name: value for name, value in options.items() if value is not None}


def run_train(options: TrainingOptions, *, settings: Settings, progress: bool) -> None:
    from embed2prompt.inversion.training import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder = create_embedder(settings)
    path = train(options, embedder, progress=progress)
    print(f"checkpoint written to {path} (config {path.with_suffix('.json')})", file=sys.stderr)


def default_run_folder() -> Path:
    return Path("runs") / "inverter"


def fluent_training_texts(text_files: list[Path], banks: list[Path]) -> tuple[list[str], set[str]]:
    """The texts of prompt ``banks`` and of ``text_files`` (.txt, .jsonl), each once, with
    every evaluation set's texts left out; and those of the files (to emphasise)."""
    from_files: list[str] = []
    for path in text_files:
        from_files += [record.text for record in read_texts(path)]
    texts: list[str] = []
    for path in banks:
        texts += PromptBank.load(path).texts
    kept = [text for text in dict.fromkeys(texts + from_files) if not is_evaluation_text(text)]
    if not kept:
        raise InputError("no training texts: pass --texts FILE or --bank NAME.bank.npz")
    return kept, {" ".join(text.split()) for text in from_files}


def run_train_fluent(
    options: PrefixTrainingOptions,
    *,
    settings: Settings,
    text_files: list[Path],
    banks: list[Path],
    progress: bool,
) -> None:
    from embed2prompt.inversion.prefix_training import train_prefix

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    texts, from_files = fluent_training_texts(text_files, banks)
    embedder = create_embedder(settings)
    path = train_prefix(options, embedder, texts, emphasised=from_files, progress=progress)
    print(f"checkpoint written to {path} (config {path.with_suffix('.json')})", file=sys.stderr)

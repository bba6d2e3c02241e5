"""``embed2prompt train``: train an inverter for the chosen embedder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from embed2prompt.backends import create_embedder
from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.errors import InputError
from embed2prompt.inversion.prefix_training import PrefixTrainingOptions, train_prefix
from embed2prompt.inversion.retrieval import PromptBank
from embed2prompt.inversion.training import TrainingOptions, train
from embed2prompt.settings import Settings
from embed2prompt.textio import read_texts


def run_train(options: TrainingOptions, *, settings: Settings, progress: bool) -> None:
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
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    texts, from_files = fluent_training_texts(text_files, banks)
    embedder = create_embedder(settings)
    path = train_prefix(options, embedder, texts, emphasised=from_files)
    print(f"checkpoint written to {path} (config {path.with_suffix('.json')})", file=sys.stderr)

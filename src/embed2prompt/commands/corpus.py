"""``embed2prompt corpus build``: assemble the inversion model's training text."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from embed2prompt.corpus.build import build_corpus
from embed2prompt.corpus.synthetic import (
    DEFAULT_TOPICS,
    TOPIC_SOURCES,
    TOPICS,
    synthetic_prompts,
    topics_named,
)
from embed2prompt.errors import InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "corpus",
        help="build the inversion model's training text",
        description=(
            "Assemble training text from Debian packages (fetched with apt-get download,\n"
            "unpacked with dpkg -x, nothing installed) plus synthetic prompts written by\n"
            "the local generator; deduplicate; split into train, val and test.\n\n"
            "`corpus synthetic` appends only the synthetic prompts, one a line, to the file\n"
            "--out names (for `bank add` and `train --fluent --texts`); run it again with\n"
            "another --seed for more, different prompts.\n\n"
            "example:\n"
            "  embed2prompt corpus build --out data/corpus --synthetic 2000\n"
            "  embed2prompt corpus synthetic --out data/synthetic.txt --synthetic 1000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["build", "synthetic"])
    parser.add_argument("--out", type=Path, default=Path("data/corpus"), help="output folder")
    parser.add_argument("--sources", help="comma-separated source names (default: all)")
    parser.add_argument(
        "--synthetic", type=int, default=0, help="synthetic prompts to generate (default 0)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic prompts (default 0)"
    )
    parser.add_argument(
        "--topics",
        choices=TOPIC_SOURCES,
        default=DEFAULT_TOPICS,
        help=f"what the synthetic prompts are about: everyday ({len(TOPICS)} hand-written "
        f"subjects) or wordnet (WordNet's 11,800 common nouns); default {DEFAULT_TOPICS}",
    )
    parser.add_argument("--root", type=Path, help="an already unpacked package tree to read")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.action == "synthetic":
        run_corpus_synthetic(
            args.out,
            count=args.synthetic,
            seed=args.seed,
            topics=args.topics,
            progress=not args.no_progress,
        )
    else:
        run_corpus_build(
            args.out,
            sources=args.sources.split(",") if args.sources else None,
            synthetic=args.synthetic,
            topics=args.topics,
            root=args.root,
            progress=not args.no_progress,
        )
    return 0


def run_corpus_build(
    out: Path,
    *,
    sources: list[str] | None,
    synthetic: int,
    topics: str,
    root: Path | None,
    progress: bool,
) -> None:
    stats = build_corpus(
        out,
        source_names=sources,
        extra_texts=(
            _synthetic(synthetic, progress, topics=topics_named(topics)) if synthetic else ()
        ),
        root=root,
    )
    for name in sorted(stats.kept):
        print(
            f"{name:>18}: {stats.kept[name]:>8,} kept of {stats.extracted[name]:,}", file=sys.stderr
        )
    splits = ", ".join(f"{name} {count:,}" for name, count in sorted(stats.splits.items()))
    print(f"{stats.duplicates:,} duplicates dropped; {splits}; written to {out}", file=sys.stderr)


def run_corpus_synthetic(out: Path, *, count: int, seed: int, topics: str, progress: bool) -> None:
    """Append up to ``count`` synthetic prompts to ``out``, one a line, as they are written
    (a long run stopped early keeps what it wrote; another ``seed`` continues it with
    different prompts)."""
    if count < 1:
        raise InputError(f"--synthetic must be at least 1 for corpus synthetic, got {count}")
    subjects = topics_named(topics)  # an unknown name is refused before the file is opened
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("a", encoding="utf-8") as handle:
        for _, text in _synthetic(count, progress, seed=seed, topics=subjects):
            handle.write(text + "\n")
            handle.flush()
            written += 1
    print(f"{written:,} synthetic prompts written to {out}", file=sys.stderr)


def _synthetic(
    count: int, progress: bool, *, topics: Sequence[str], seed: int = 0
) -> Iterator[tuple[str, str]]:
    from tqdm import tqdm

    from embed2prompt.corpus.writers import BatchedLMWriter

    writer = BatchedLMWriter()
    with tqdm(total=count, unit="prompt", disable=not progress, file=sys.stderr) as bar:
        for text in synthetic_prompts(count, writer=writer, seed=seed, topics=topics):
            bar.update(1)
            yield "synthetic", text

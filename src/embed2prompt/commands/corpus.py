"""``embed2prompt corpus build``: assemble the inversion model's training text."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from embed2prompt.corpus.build import DEFAULT_CACHE, build_corpus
from embed2prompt.errors import InputError


def run_corpus_build(
    out: Path,
    *,
    sources: list[str] | None,
    synthetic: int,
    root: Path | None,
    progress: bool,
) -> None:
    stats = build_corpus(
        out,
        source_names=sources,
        extra_texts=_synthetic(synthetic, progress) if synthetic else (),
        cache=DEFAULT_CACHE,
        root=root,
    )
    for name in sorted(stats.kept):
        print(
            f"{name:>18}: {stats.kept[name]:>8,} kept of {stats.extracted[name]:,}", file=sys.stderr
        )
    splits = ", ".join(f"{name} {count:,}" for name, count in sorted(stats.splits.items()))
    print(f"{stats.duplicates:,} duplicates dropped; {splits}; written to {out}", file=sys.stderr)


def run_corpus_synthetic(out: Path, *, count: int, seed: int, progress: bool) -> None:
    """Append up to ``count`` synthetic prompts to ``out``, one a line, as they are written
    (a long run stopped early keeps what it wrote; another ``seed`` continues it with
    different prompts)."""
    if count < 1:
        raise InputError(f"--synthetic must be at least 1 for corpus synthetic, got {count}")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("a", encoding="utf-8") as handle:
        for _, text in _synthetic(count, progress, seed=seed):
            handle.write(text + "\n")
            handle.flush()
            written += 1
    print(f"{written:,} synthetic prompts written to {out}", file=sys.stderr)


def _synthetic(count: int, progress: bool, *, seed: int = 0) -> Iterator[tuple[str, str]]:
    from embed2prompt.corpus.synthetic import synthetic_prompts
    from embed2prompt.corpus.writers import BatchedLMWriter

    writer = BatchedLMWriter()
    with tqdm(total=count, unit="prompt", disable=not progress, file=sys.stderr) as bar:
        for text in synthetic_prompts(count, writer=writer, seed=seed):
            bar.update(1)
            yield "synthetic", text

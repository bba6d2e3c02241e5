"""Texts kept out of every corpus: the evaluation sets.

- ``out_of_domain.txt``: 40 questions and instructions; the inverter's eval and the
  pipeline's benchmarks have chosen settings on them.
- ``pipeline_held_out.txt``: 40 more, written after the pipeline's fluency weight was
  chosen, to check it on texts that tuned nothing.
- ``held_out_prompts.txt``: 100 prompt-like texts (questions, instructions, requests,
  statements) written for the fluent inverter and never used to choose a setting.
- ``demo_texts.txt``: the ten texts `make demo` inverts, whose figures are quoted too.

Training text, synthetic prompts and prompt banks must never contain any of them
(:func:`is_evaluation_text`). This lives beside the corpus because building training text
must know what to keep out, and that should not need the inversion stack.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from embed2prompt.corpus.build import normalised


def _read(name: str) -> list[str]:
    text = resources.files("embed2prompt.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def out_of_domain_texts() -> list[str]:
    """Questions and instructions written for evaluation, never part of any corpus."""
    return _read("out_of_domain.txt")


def pipeline_held_out_texts() -> list[str]:
    """Questions and instructions that checked the pipeline's settings, tuning none."""
    return _read("pipeline_held_out.txt")


def held_out_prompts() -> list[str]:
    """Prompt-like texts that no setting was ever chosen on: the honest figures."""
    return _read("held_out_prompts.txt")


def demo_texts() -> list[str]:
    """The texts the demo embeds and inverts (questions, requests, statements)."""
    return _read("demo_texts.txt")


@cache
def _evaluation_keys() -> frozenset[str]:
    texts = out_of_domain_texts() + pipeline_held_out_texts() + held_out_prompts() + demo_texts()
    return frozenset(normalised(text) for text in texts)


def is_evaluation_text(text: str) -> bool:
    """Whether ``text`` is (up to case and spacing) a text of any evaluation set."""
    return normalised(text) in _evaluation_keys()


# The sets ``embed2prompt eval`` scores, by name: what each is.
EVALUATION_SETS = {
    "in-domain": "in-domain (test split)",
    "out-of-domain": "out-of-domain (questions, instructions)",
    "held-out": "held-out prompts (tuned nothing)",
}

"""Texts kept out of every corpus: the evaluation's out-of-domain set.

Questions and instructions written for evaluation (``data/out_of_domain.txt``). The
inverter's eval scores them and the pipeline's benchmarks invert them; synthetic prompts
that happen to equal one are dropped, so none can reach training data or a prompt bank.
It lives here, beside the corpus, because building training text must know what to
keep out, and that should not need the inversion stack.
"""

from __future__ import annotations

from importlib import resources


def out_of_domain_texts() -> list[str]:
    """Questions and instructions written for evaluation, never part of any corpus."""
    text = resources.files("embed2prompt.data").joinpath("out_of_domain.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]

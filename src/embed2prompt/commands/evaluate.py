"""``embed2prompt eval``: the inverter's scores on in-domain and out-of-domain texts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embed2prompt.corpus.held_out import EVALUATION_SETS, held_out_prompts, out_of_domain_texts
from embed2prompt.inversion.evaluation import evaluate_inversion
from embed2prompt.inversion.inference import (
    DEFAULT_NEIGHBOURS,
    EmbeddingToPromptInference,
)
from embed2prompt.inversion.readability import ReadabilityJudge
from embed2prompt.inversion.training import read_split


def run_eval(
    *,
    model: Path,
    corpus: Path,
    samples: int,
    steps: list[int],
    beam: int | None = None,
    edits: int | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
    batch: int = 32,
    fluency: float | None = None,
    completions: int | None = None,
    strength: float | None = None,
    sets: Sequence[str] = tuple(EVALUATION_SETS),
    readability: bool = True,
    as_json: bool,
) -> None:
    inverter = EmbeddingToPromptInference(model, neighbours=neighbours)
    judge = ReadabilityJudge() if readability else None
    readers = {
        "in-domain": lambda: read_split(corpus, "test", samples),
        "out-of-domain": out_of_domain_texts,
        "held-out": held_out_prompts,  # no setting was ever chosen on these
    }
    evaluated = {EVALUATION_SETS[name]: readers[name]() for name in sets}
    rows: list[dict[str, Any]] = []
    for name, texts in evaluated.items():
        for step_count in steps:
            scores, examples = evaluate_inversion(
                inverter,
                texts,
                steps=step_count,
                beam=beam,
                edits=edits,
                batch=batch,
                fluency=fluency,
                completions=completions,
                strength=strength,
                judge=judge,
            )
            rows.append({"set": name, **scores.as_dict(), "examples": examples[:3]})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    columns = {  # table heading: field of the scores
        "set": "set",
        "steps": "steps",
        "beam": "beam",
        "edits": "edits",
        "bank": "neighbours",
        "fluency": "fluency",
        "compl.": "completions",
        "strength": "strength",
        "batch": "batch",
        "n": "texts",
        "BLEU": "bleu",
        "tokF1": "token_f1",
        "exact%": "exact_match",
        "cos mean": "mean_cosine",
        "cos median": "median_cosine",
        "calls/target": "embedder_calls_per_target",
        "s/target": "seconds_per_target",
        "LM logprob": "prompt_log_prob",
        "originals'": "original_log_prob",
        "English%": "english_percent",
    }
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = ("-" if row[field] is None else str(row[field]) for field in columns.values())
        print("| " + " | ".join(cells) + " |")
    print(file=sys.stderr)
    for row in rows:
        for original, prompt, cosine in row["examples"]:
            print(
                f"[{row['set']}, {row['steps']} steps] {cosine:.3f}  {original!r} -> {prompt!r}",
                file=sys.stderr,
            )

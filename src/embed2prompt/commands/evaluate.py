"""``embed2prompt eval``: the inverter's scores on in-domain and out-of-domain texts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from embed2prompt.inversion.evaluation import evaluate_inversion, out_of_domain_texts
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.training import read_split


def run_eval(
    *, model: Path, corpus: Path, samples: int, steps: list[int], beam: int, as_json: bool
) -> None:
    inverter = EmbeddingToPromptInference(model)
    sets = {
        "in-domain (test split)": read_split(corpus, "test", samples),
        "out-of-domain (questions, instructions)": out_of_domain_texts(),
    }
    rows: list[dict[str, Any]] = []
    for name, texts in sets.items():
        for step_count in steps:
            scores, examples = evaluate_inversion(inverter, texts, steps=step_count, beam=beam)
            rows.append({"set": name, **scores.as_dict(), "examples": examples[:3]})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    header = (
        "set",
        "steps",
        "n",
        "BLEU",
        "tokF1",
        "exact%",
        "cos mean",
        "cos median",
        "calls/target",
        "s/target",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print(
            f"| {row['set']} | {row['steps']} | {row['texts']} | {row['bleu']} | {row['token_f1']} "
            f"| {row['exact_match']} | {row['mean_cosine']} | {row['median_cosine']} "
            f"| {row['embedder_calls_per_target']} | {row['seconds_per_target']} |"
        )
    print(file=sys.stderr)
    for row in rows:
        for original, prompt, cosine in row["examples"]:
            print(
                f"[{row['set']}, {row['steps']} steps] {cosine:.3f}  {original!r} -> {prompt!r}",
                file=sys.stderr,
            )

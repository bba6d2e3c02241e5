"""``embed2prompt eval``: the inverter's scores on in-domain and out-of-domain texts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embed2prompt.backends import create_inverter
from embed2prompt.cli import _at_least_one, _at_least_zero, _default
from embed2prompt.corpus.held_out import EVALUATION_SETS, held_out_prompts, out_of_domain_texts
from embed2prompt.inversion.readability import ReadabilityJudge
from embed2prompt.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "eval",
        help="score the inverter: BLEU, token F1, exact match, cosine, cost",
        description=(
            "Invert embeddings of the corpus's test split and of out-of-domain questions\n"
            "and instructions, and compare the prompts with the original texts.\n\n"
            "example:\n"
            "  embed2prompt eval --samples 200 --steps 0,8,16"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        type=Path,
        help=f"the inverter's checkpoint ({_default('model_path')})",
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument(
        "--samples", type=_at_least_zero, default=200, help="test texts to use (0: all)"
    )
    parser.add_argument(
        "--steps",
        type=_step_counts,
        help="comma-separated refinement steps (default: 0 and invert's steps; "
        f"invert's {_default('refinement_steps')})",
    )
    parser.add_argument(
        "--batch",
        type=_at_least_one,
        help="targets inverted together (default: evaluate_inversion's, EVAL_BATCH)",
    )
    parser.add_argument("--beam", type=int, help="sequence beam (default: the model's own)")
    parser.add_argument(
        "--edits", type=int, help="word edits per hypothesis a step (default: the model's own)"
    )
    parser.add_argument(
        "--fluency",
        type=float,
        help="weight of readability against cosine in refinement (0: cosine alone; "
        "default: the model's own)",
    )
    parser.add_argument(
        "--fluency-shortlist",
        type=_at_least_one,
        help="hypotheses (the closest) whose readability is scored a step (default: the "
        "model's own)",
    )
    parser.add_argument(
        "--neighbours",
        type=_at_least_zero,
        help="training texts from the model's prompt bank added to the first guesses "
        "(0: none; default: the model's own)",
    )
    parser.add_argument(
        "--token-edits",
        type=_at_least_zero,
        help="one-token edits the inverter finds likeliest, proposed for each hypothesis "
        "a step (0: off; default: the model's own)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        help="re-decode conditioned on target + S x (target - hypothesis) a step (0: off; "
        "default: the model's own)",
    )
    parser.add_argument(
        "--sets",
        type=_evaluation_sets,
        default=list(EVALUATION_SETS),
        help=f"comma-separated sets to score (default: all of {', '.join(EVALUATION_SETS)})",
    )
    parser.add_argument(
        "--readability",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="judge whether prompts read as English with Gemma-3-270M (about 0.1 s a text)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    run_eval(
        model=args.model,
        corpus=args.corpus,
        samples=args.samples,
        steps=args.steps,
        search={
            "beam": args.beam,
            "edits": args.edits,
            "neighbours": args.neighbours,
            "fluency": args.fluency,
            "fluency_shortlist": args.fluency_shortlist,
            "token_edits": args.token_edits,
            "strength": args.strength,
        },
        batch=args.batch,
        sets=args.sets,
        readability=args.readability,
        as_json=args.json,
    )
    return 0


def _step_counts(value: str) -> list[int]:
    """``0,8,16``: refinement step counts, each a whole number >= 0."""
    try:
        return [_at_least_zero(part.strip()) for part in value.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 0 such as 0,8, got {value!r}"
        ) from None


def _evaluation_sets(value: str) -> list[str]:
    """``held-out,out-of-domain``: names of evaluation sets."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in EVALUATION_SETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated names among {', '.join(EVALUATION_SETS)}, got {value!r}"
        )
    return names


def run_eval(
    *,
    model: Path | None,
    corpus: Path,
    samples: int,
    steps: list[int] | None,
    search: Mapping[str, Any] | None = None,
    batch: int | None = None,
    sets: Sequence[str] = tuple(EVALUATION_SETS),
    readability: bool = True,
    as_json: bool,
    settings: Settings | None = None,
) -> None:
    """Score ``model`` (``None``: the settings', as ``invert``) at each of ``steps``
    (``None``: one pass and the settings' refinement steps, as ``invert``), its search
    otherwise the model's own under the settings' choices, as ``invert``'s, then
    ``search``'s (:class:`SearchBudget` fields; ``None`` values: not chosen). The
    pipeline's defaults for a checkpoint without its own search do not apply: this
    measures the inverter. The inverter is the settings' (its embedder), without an
    aligner: the texts are embedded by the inverter's own embedder."""
    from embed2prompt.inversion.evaluation import evaluate_inversion  # torch: not for --help
    from embed2prompt.inversion.training import read_split

    settings = (settings or Settings()).model_copy(update={"aligner": None})
    if steps is None:
        steps = list(dict.fromkeys([0, settings.refinement_steps]))
    inverter = create_inverter(settings, model_path=model)
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
            budget = inverter.search_budget(settings.search_choices, search, steps=step_count)
            given = {"batch": batch} if batch is not None else {}
            scores, examples = evaluate_inversion(
                inverter, texts, budget=budget, judge=judge, **given
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
        "tok.edits": "token_edits",
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

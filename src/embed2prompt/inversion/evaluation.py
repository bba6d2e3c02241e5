"""Measuring inversion as the field does: BLEU, token F1, exact match, cosine, cost.

Texts are embedded, inverted, and the prompts compared with the originals: sacrebleu's
corpus BLEU, the F1 of lower-cased word sets, exact match, the mean and median cosine of
the prompts' own embeddings to the targets, and embedder calls and wall time per target.
With a :class:`ReadabilityJudge`, also whether the prompts read as English: their mean
token log-probability under an independent language model, beside the originals', and
the share of prompts at least as likely as the least likely tenth of the originals.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import sacrebleu

from embed2prompt.errors import InputError
from embed2prompt.inversion.budget import SearchBudget
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.readability import ReadabilityJudge

# Texts longer than this are left out of an evaluation: both inverters write at most
# 32 tokens, about 24 words. A word count, so that both kinds score the same texts.
MAX_WORDS = 24

EVAL_BATCH = 32  # targets inverted together, as a batch job sends them
_WORDS = re.compile(r"[a-z0-9']+")


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = (
        set(_WORDS.findall(prediction.lower())),
        set(_WORDS.findall(reference.lower())),
    )
    common = len(predicted & expected)
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class InversionScores:
    texts: int
    steps: int
    beam: int
    edits: int
    neighbours: int  # texts from the prompt bank among the first guesses (0: no bank)
    batch: int  # targets inverted together
    fluency: float  # weight of the inverter's fluency against cosine in refinement
    token_edits: int  # one-token edits the inverter proposes for each hypothesis a step
    strength: float  # re-decoding conditioned away from each hypothesis's error (0: off)
    bleu: float
    token_f1: float
    exact_match: float
    mean_cosine: float
    median_cosine: float
    embedder_calls_per_target: float
    seconds_per_target: float
    # Readability (with a judge; None without): the prompts' and the originals' mean
    # token log-probability under the judge, and the percentage of prompts scoring at
    # least the originals' 10th percentile ("reads as English" as often as real texts do).
    prompt_log_prob: float | None = None
    original_log_prob: float | None = None
    english_percent: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def evaluate_inversion(
    inverter: EmbeddingToPromptInference,
    texts: list[str],
    *,
    budget: SearchBudget | None = None,
    batch: int = EVAL_BATCH,
    judge: ReadabilityJudge | None = None,
) -> tuple[InversionScores, list[tuple[str, str, float]]]:
    """Scores, and (original, prompt, cosine) for every text of at most 24 words,
    inverted ``batch`` at a time with ``budget`` (default: the inverter's own search);
    with a ``judge``, readability too (outside the timing)."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    budget = budget or inverter.search
    given = len(texts)
    texts = [text for text in texts if len(text.split()) <= MAX_WORDS]
    if not texts:
        raise InputError(
            f"none of the {given} texts has at most {MAX_WORDS} words; "
            "expected at least one short text to invert"
        )
    targets = asyncio.run(inverter.embedder.embed(texts))
    # One untimed inversion first: the first call's one-off costs (thread pools, torch's
    # first kernels, the lexicon's loading) are not a cost per target.
    inverter.invert_batch(targets[:1], budget=budget.updated(steps=min(budget.steps, 1)))
    started = time.perf_counter()
    results = []
    for begin in range(0, len(texts), batch):
        results += inverter.invert_batch(targets[begin : begin + batch], budget=budget)
    elapsed = time.perf_counter() - started
    prompts = [result.prompt for result in results]
    cosines = [result.cosine for result in results]
    readability = _readability(judge, prompts, texts) if judge is not None else {}
    scores = InversionScores(
        texts=len(texts),
        steps=budget.steps,
        beam=budget.beam,
        edits=budget.edits,
        neighbours=budget.neighbours if inverter.bank is not None else 0,
        batch=batch,
        fluency=budget.fluency,
        token_edits=budget.token_edits,
        strength=budget.strength,
        bleu=round(sacrebleu.corpus_bleu(prompts, [texts]).score, 2),
        token_f1=round(
            100 * statistics.mean(token_f1(p, t) for p, t in zip(prompts, texts, strict=True)), 2
        ),
        exact_match=round(
            100 * sum(p == t for p, t in zip(prompts, texts, strict=True)) / len(texts), 2
        ),
        mean_cosine=round(statistics.mean(cosines), 4),
        median_cosine=round(statistics.median(cosines), 4),
        embedder_calls_per_target=round(sum(r.embedder_calls for r in results) / len(results), 1),
        seconds_per_target=round(elapsed / len(texts), 4),
        **readability,
    )
    return scores, list(zip(texts, prompts, cosines, strict=True))


def _readability(
    judge: ReadabilityJudge, prompts: list[str], originals: list[str]
) -> dict[str, float]:
    prompt_scores = judge.score(prompts)
    original_scores = judge.score(originals)
    bar = float(np.quantile(original_scores, 0.1))
    english = sum(score >= bar for score in prompt_scores)
    return {
        "prompt_log_prob": round(statistics.mean(prompt_scores), 3),
        "original_log_prob": round(statistics.mean(original_scores), 3),
        "english_percent": round(100 * english / len(prompts), 1),
    }

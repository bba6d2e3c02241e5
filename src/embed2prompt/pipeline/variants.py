"""Refined variants of a prompt, each evaluated like the original.

Two sources, as the seed's ``generate_variants`` promises:

- **refinement**: the inverter's runners-up, the best other texts its embedding-feedback
  search scored (close to the target, often differently worded);
- **rewrite**: the generator rewrites the best prompt found so far, judged by the
  similarity feedback: each rewrite starts from whichever prompt scored best until then,
  several drafts are written and only the draft whose own embedding is closest to the
  target is evaluated (drafts cost one embedding call, evaluations a generation).

Without an evaluator (quality evaluation off, so no generator calls) every variant comes
from refinement and is ranked by its prompt similarity.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import RepeatedRewriteError
from embed2prompt.inversion.inference import InversionResult
from embed2prompt.pipeline.quality import QualityEvaluator
from embed2prompt.pipeline.results import EvaluationResult, VariantResult, VariantSource, score

REWRITE_TEMPLATE = (
    "Rewrite the following as a clear, natural request or sentence with the same meaning:\n{prompt}"
)
# More drafts measured no better per generator call (a development run whose figures were
# not kept).
REWRITE_DRAFTS = 1


# How much of its wording a runner-up must change (the Jaccard distance of its word set
# from the prompt's and each chosen variant's) to be chosen before closer ones: a
# runner-up that repeats the prompt but for a word makes the LLM write much the same.
_NEW_WORDING = 0.3


def plan_variants(
    count: int, inversion: InversionResult, *, rewriting: bool
) -> tuple[list[tuple[str, float]], int]:
    """The runners-up that become refinement variants (text, prompt similarity), and how
    many rewrites follow: ``max(1, count // 3)`` rewrites when ``rewriting`` (they need
    the generator; a single variant is a rewrite), the rest runners-up, and rewrites
    fill in when the inverter found too few distinct texts. Runners-up are taken closest
    first among those worded differently enough from the prompt and from each other,
    then closest first among the rest."""
    # Runners-up win more often than rewrites (31 of 40 best variants on the out-of-domain
    # set): 2 runners-up and 1 rewrite gave a best of 0.807 where 1 and 2 gave 0.798.
    rewrites = max(1, count // 3) if rewriting and count else 0
    remaining = list(inversion.candidates[1:])
    chosen: list[tuple[str, float]] = []
    wordings = [_words(inversion.prompt)]  # the prompt's, then each chosen variant's

    def worded_anew(text: str) -> bool:
        return min(_distance(_words(text), seen) for seen in wordings) >= _NEW_WORDING

    while remaining and len(chosen) < count - rewrites:
        pick = max(remaining, key=lambda candidate: (worded_anew(candidate[0]), candidate[1]))
        remaining.remove(pick)
        chosen.append(pick)
        wordings.append(_words(pick[0]))
    return chosen, (count - len(chosen) if rewriting else 0)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


def _distance(first: frozenset[str], second: frozenset[str]) -> float:
    """The Jaccard distance of two word sets (0: the same words), to two decimals, so that
    3 words changed of 10 count as 0.3 whatever the float arithmetic."""
    union = first | second
    return round(1 - len(first & second) / len(union), 2) if union else 0.0


async def make_variants(
    count: int,
    original: EvaluationResult,
    inversion: InversionResult,
    target: npt.NDArray[np.float32],
    evaluator: QualityEvaluator | None,
) -> list[VariantResult]:
    """``count`` variants of ``inversion.prompt``, as :func:`plan_variants` divides them."""
    runners_up, rewrites = plan_variants(count, inversion, rewriting=evaluator is not None)
    variants = [
        await _evaluate(text, cosine, "refinement", target, evaluator)
        for text, cosine in runners_up
    ]
    if evaluator is None:
        return variants
    tried = {inversion.prompt, *(variant.prompt for variant in variants)}
    for number in range(rewrites):
        started = time.perf_counter()
        drafts: list[str] = []
        base = _best_prompt(inversion.prompt, original, variants)
        try:
            drafts = [
                await evaluator.generate(base, template=REWRITE_TEMPLATE, seed=number * 10 + i)
                for i in range(REWRITE_DRAFTS)
            ]
            fresh = [draft for draft in dict.fromkeys(drafts) if draft not in tried]
            if not fresh:
                raise RepeatedRewriteError(
                    "the generator repeated a prompt already evaluated; no new rewrite"
                )
            cosines = await evaluator.similarities(fresh, target)
            best = int(np.argmax(cosines))
        except Exception as error:
            variants.append(_failed(drafts[0] if drafts else "", "rewrite", started, error))
            continue
        tried.add(fresh[best])
        variants.append(
            await _evaluate(fresh[best], float(cosines[best]), "rewrite", target, evaluator)
        )
    return variants


def best_of(variants: list[VariantResult]) -> VariantResult | None:
    """The variant with the highest score; ``None`` when none succeeded."""
    ranked = [(score(variant), variant) for variant in variants]
    scored = [(value, variant) for value, variant in ranked if value is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


async def _evaluate(
    prompt: str,
    prompt_similarity: float,
    source: VariantSource,
    target: npt.NDArray[np.float32],
    evaluator: QualityEvaluator | None,
) -> VariantResult:
    started = time.perf_counter()
    evaluation = None
    if evaluator is not None:
        try:
            evaluation = await evaluator.evaluate(prompt, target)
        except Exception as error:
            failed = _failed(prompt, source, started, error)
            return failed.model_copy(update={"prompt_similarity": prompt_similarity})
    return VariantResult(
        prompt=prompt,
        source=source,
        similarity=evaluation.similarity if evaluation is not None else None,
        prompt_similarity=prompt_similarity,
        success=True,
        processing_time=time.perf_counter() - started,
        generated_text=evaluation.generated_text if evaluation is not None else None,
    )


def _failed(prompt: str, source: VariantSource, started: float, error: Exception) -> VariantResult:
    return VariantResult(
        prompt=prompt,
        source=source,
        similarity=None,
        prompt_similarity=None,
        success=False,
        processing_time=time.perf_counter() - started,
    ).failed_with(error)


def _best_prompt(prompt: str, original: EvaluationResult, variants: list[VariantResult]) -> str:
    best = best_of(variants)
    if best is None:
        return prompt
    original_score = score(original)
    best_score = score(best)
    if original_score is not None and best_score is not None and original_score >= best_score:
        return prompt
    return best.prompt

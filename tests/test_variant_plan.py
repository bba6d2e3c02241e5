"""How a prompt's variants divide between runners-up and rewrites: one rule for the
pipeline and the Batch API mode."""

from __future__ import annotations

from embed2prompt.inversion.inference import InversionResult
from embed2prompt.pipeline.variants import plan_variants

PROMPT = "How do I reset my router?"


def _inversion(*runners_up: str) -> InversionResult:
    cosines = [0.9 - 0.01 * rank for rank in range(len(runners_up) + 1)]
    candidates = list(zip([PROMPT, *runners_up], cosines, strict=True))
    return InversionResult(PROMPT, cosines[0], candidates=candidates)


def test_runners_up_come_best_first_with_their_similarities() -> None:
    inversion = _inversion("Router reset steps", "Restore factory settings", "Router help")
    runners_up, rewrites = plan_variants(3, inversion, rewriting=True)
    assert runners_up == inversion.candidates[1:3]
    assert rewrites == 1


def test_the_plan_divides_variants_between_runners_up_and_rewrites() -> None:
    many = _inversion("Router reset steps", "Restore factory settings", "Wireless router help")
    assert plan_variants(1, many, rewriting=True) == ([], 1)  # a single variant: a rewrite
    runners_up, rewrites = plan_variants(6, many, rewriting=True)
    assert (len(runners_up), rewrites) == (3, 3)  # too few runners-up: rewrites fill in
    assert len(plan_variants(3, many, rewriting=False)[0]) == 3  # no generator: no rewrite
    assert plan_variants(3, many, rewriting=False)[1] == 0
    assert plan_variants(0, many, rewriting=True) == ([], 0)


def test_without_a_generator_the_variants_are_as_many_runners_up_as_there_are() -> None:
    few = _inversion("Router reset steps")
    assert plan_variants(3, few, rewriting=False) == (few.candidates[1:], 0)
    assert plan_variants(3, few, rewriting=True) == (few.candidates[1:], 2)


def test_runners_up_worded_like_the_prompt_or_each_other_come_after_new_wordings() -> None:
    inversion = _inversion(
        "How do I reset my Router?",  # the prompt's words, one capital changed
        "how do I reset my router?",  # and in lower case
        "Restore the router's factory settings",
        "Restore the router's factory settings please",  # like the one before
        "Which cable connects the modem?",
    )
    runners_up, _ = plan_variants(4, inversion, rewriting=False)
    assert [text for text, _ in runners_up] == [
        "Restore the router's factory settings",
        "Which cable connects the modem?",
        # None left is worded anew: the closest of the rest, each with its similarity.
        "How do I reset my Router?",
        "how do I reset my router?",
    ]
    assert runners_up[0] == inversion.candidates[3]

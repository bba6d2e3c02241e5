"""The training-free refinement: residual-guided word edits, scored by the real embedder."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.inference import SMALL_MODEL, EmbeddingToPromptInference
from embed2prompt.inversion.lexical_search import (
    MAX_WORDS,
    Lexicon,
    frequent_words,
    propose_edits,
    residual,
    tokenizer_words,
)

WORDS = ["cat", "dog", "car", "ocean", "password", "guitar", "pizza", "rain", "server", "poem"]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def lexicon(embedder: LocalEmbedder) -> Lexicon:
    return asyncio.run(Lexicon.embed(WORDS, embedder))


def test_frequent_words_counts_case_insensitively_and_drops_rare_words() -> None:
    texts = ["The cat sat.", "the cat ran", "the cat hid", "cat", "a dog", "a dog", "a Dog", "rare"]
    assert frequent_words(texts) == ["cat", "the", "dog"]  # 'The' counted with 'the'
    assert frequent_words(texts, limit=1) == ["cat"]


def test_tokenizer_words_keeps_whole_words_only() -> None:
    vocabulary = {"Ġcat": 1, "Ġcats": 2, "ing": 3, "Ġ12": 4, "Ġa": 5, "Ġtree": 6}
    assert tokenizer_words(vocabulary) == ["cat", "cats", "tree"]  # 3 letters or more


def test_lexicon_finds_words_along_a_direction(lexicon: Lexicon, embedder: LocalEmbedder) -> None:
    direction = embedder.embed_sync(["a small kitten purring"])[0]
    assert lexicon.towards(direction, 1) == ["cat"]
    assert len(lexicon.towards(direction, 100)) == len(WORDS)  # never more than it has


def test_residual_is_the_unexplained_part_of_the_target() -> None:
    target = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    hypothesis = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(residual(target, hypothesis), [0.0, 1.0, 0.0], atol=1e-6)
    assert residual(target, target) is target  # nothing left to explain: aim at the target


def test_edits_are_distinct_deletions_and_residual_words(
    lexicon: Lexicon, embedder: LocalEmbedder
) -> None:
    text = "a poem about the sea"
    vector, target = embedder.embed_sync([text, "a poem about the ocean and the rain"])
    edits = propose_edits(text, vector, target, lexicon, np.random.default_rng(0), count=12)
    assert len(edits) == len(set(edits)) == 12
    assert text not in edits
    deletions = {"poem about the sea", "a about the sea", "a poem the sea", "a poem about sea"}
    assert deletions | {"a poem about the"} <= set(edits)  # every deletion fits the budget
    added = {word for edit in edits for word in edit.split()} - set(text.split())
    assert added & {"ocean", "rain"}  # words along the residual are tried
    for edit in edits:
        assert all(a != b for a, b in pairwise(edit.lower().split())), edit  # no "sea sea"


def test_edits_never_grow_a_prompt_beyond_the_word_limit(
    lexicon: Lexicon, embedder: LocalEmbedder
) -> None:
    text = " ".join(f"item{number}" for number in range(MAX_WORDS))
    vector, target = embedder.embed_sync([text, "a cat and a dog"])
    edits = propose_edits(text, vector, target, lexicon, np.random.default_rng(1), count=20)
    assert edits
    assert all(len(edit.split()) <= MAX_WORDS for edit in edits)
    shorter = [edit for edit in edits if len(edit.split()) < MAX_WORDS]
    assert len(shorter) == 10  # deletions: half the budget, the rest substitutions


@pytest.fixture(scope="module")
def small_inverter(embedder: LocalEmbedder) -> EmbeddingToPromptInference:
    if not Path(SMALL_MODEL).exists():
        pytest.skip(f"{SMALL_MODEL} is not in this checkout")
    return EmbeddingToPromptInference(SMALL_MODEL, embedder=embedder)


def test_refinement_with_edits_only_improves(
    small_inverter: EmbeddingToPromptInference, embedder: LocalEmbedder
) -> None:
    target = embedder.embed_sync(["how do I bake sourdough bread at home"])[0]
    one_pass = small_inverter.invert(target)
    refined = small_inverter.invert(target, steps=3, beam=2, edits=24)
    assert refined.trace[0] == pytest.approx(one_pass.cosine)
    assert refined.trace == sorted(refined.trace)
    assert refined.cosine > one_pass.cosine  # the edits found something better
    assert float(embedder.embed_sync([refined.prompt])[0] @ target) == pytest.approx(
        refined.cosine, abs=1e-4
    )


def test_the_midpoint_of_two_unrelated_sentences_is_recovered(
    small_inverter: EmbeddingToPromptInference, embedder: LocalEmbedder
) -> None:
    """A vector that is no text's embedding: the recovered prompt is closer to it than
    either sentence it was made from."""
    first, second = embedder.embed_sync(
        [
            "The recipe needs two cups of flour and a pinch of salt.",
            "Our server crashed last night.",
        ]
    )
    midpoint = (first + second) / np.linalg.norm(first + second)
    result = small_inverter.invert(midpoint, steps=4, beam=2, edits=32)
    assert result.cosine > max(float(first @ midpoint), float(second @ midpoint))

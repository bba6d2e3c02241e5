"""The readability judge: Gemma-3-270M's mean token log-probability, real weights."""

from __future__ import annotations

import pytest

from embed2prompt import InputError
from embed2prompt.inversion.readability import ReadabilityJudge


@pytest.fixture(scope="module")
def judge() -> ReadabilityJudge:
    return ReadabilityJudge(threads=2)


def test_english_scores_above_the_same_words_scrambled(judge: ReadabilityJudge) -> None:
    pairs = [
        ("How do I bake sourdough bread at home?", "bread sourdough home bake how I do at"),
        ("Lead is a heavy metal.", "heavy metal are lead lead. is"),
        ("Write a short poem about the sea.", "sea the poem short about a Write."),
    ]
    scores = judge.score([text for pair in pairs for text in pair])
    assert len(scores) == 6
    for sentence, scrambled in zip(scores[::2], scores[1::2], strict=True):
        assert sentence > scrambled + 1  # nats a token: far apart, not a coin toss
    assert all(-20 < score < 0 for score in scores)


def test_the_same_text_always_gets_the_same_score(judge: ReadabilityJudge) -> None:
    first, _, again = judge.score(["Free of smoke.", "Something else entirely.", "Free of smoke."])
    assert first == again  # no state leaks from one text to the next


def test_an_empty_text_is_refused(judge: ReadabilityJudge) -> None:
    with pytest.raises(InputError, match="empty text"):
        judge.score(["fine", "   "])

"""Training-free refinement: word edits guided by the embedding residual.

A sentence embedder like all-MiniLM-L6-v2 averages contextual token vectors, so adding a
word moves a text's embedding roughly towards that word's own embedding, and removing one
moves it away. The words worth trying are therefore those whose embeddings point along the
*residual*: the part of the target that the hypothesis does not explain yet (the target
minus its projection on the hypothesis's embedding). Each step proposes every deletion and
a sample of substitutions and insertions of such words; the embedder scores them and the
caller keeps the best few (a sequence beam). This is the zero-shot search of the field,
started from the inverter's readable guess instead of from nothing.

The words come from a lexicon: the corpus's most frequent words, stored with the checkpoint
(older checkpoints fall back to the whole words of the tokenizer's vocabulary).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder

Vectors = npt.NDArray[np.float32]

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]")
# 20,000 words measured better than 6,000 (cosine after 12 steps 0.918 / 0.914 against
# 0.899 / 0.901) and as good as 25,600 or adding the embedder's vocabulary
# (docs/development-log.md, "What changed in the second session").
LEXICON_SIZE = 20_000
MAX_WORDS = 32  # no edit grows a prompt beyond this many words


def frequent_words(texts: Iterable[str], *, limit: int = LEXICON_SIZE) -> list[str]:
    """The ``limit`` most frequent words of ``texts`` (seen at least 3 times, whatever the
    case), most frequent first, each in the spelling it is most often written in."""
    spellings: Counter[str] = Counter()
    for text in texts:
        spellings.update(_WORD.findall(text))
    counts: Counter[str] = Counter()
    usual: dict[str, str] = {}
    for spelling, count in spellings.most_common():
        counts[spelling.lower()] += count
        usual.setdefault(spelling.lower(), spelling)  # the first seen is the most common
    return [usual[word] for word, count in counts.most_common(limit) if count >= 3]


def tokenizer_words(vocabulary: Iterable[str]) -> list[str]:
    """Whole words of a byte-level BPE vocabulary (tokens that start a word: ``Ġword``)."""
    return sorted(
        token[1:]
        for token in vocabulary
        if token.startswith("Ġ") and len(token) > 3 and _WORD.fullmatch(token[1:])
    )


@dataclass(frozen=True)
class Lexicon:
    """Words and their unit embeddings, for finding words that point along a direction."""

    words: list[str]
    vectors: Vectors  # (len(words), d)

    @classmethod
    async def embed(cls, words: Sequence[str], embedder: Embedder) -> Lexicon:
        unique = list(dict.fromkeys(words))
        return cls(unique, await embedder.embed(unique))

    def towards(self, direction: npt.NDArray[np.float32], count: int) -> list[str]:
        """The ``count`` words whose embeddings have the largest component along ``direction``."""
        count = min(count, len(self.words))
        scores = self.vectors @ direction
        top = np.argpartition(-scores, count - 1)[:count]
        return [self.words[index] for index in top[np.argsort(-scores[top])]]


def residual(target: npt.NDArray[np.float32], hypothesis: npt.NDArray[np.float32]) -> Vectors:
    """The part of ``target`` orthogonal to ``hypothesis`` (both unit vectors), unit length;
    the target itself when the two are (nearly) parallel."""
    rest: Vectors = (target - float(target @ hypothesis) * hypothesis).astype(np.float32)
    norm = float(np.linalg.norm(rest))
    if norm < 1e-6:
        return target
    unit: Vectors = rest / norm
    return unit


def propose_edits(
    text: str,
    text_vector: npt.NDArray[np.float32],
    target: npt.NDArray[np.float32],
    lexicon: Lexicon,
    rng: np.random.Generator,
    *,
    count: int,
    candidate_words: int = 16,
) -> list[str]:
    """Up to ``count`` distinct edits of ``text``: single-word deletions (all of them, or a
    random half of the budget), then substitutions and insertions of the words that point
    along the residual."""
    words = text.split()
    additions = lexicon.towards(residual(target, text_vector), candidate_words)
    edits: dict[str, None] = {}
    if len(words) > 1:
        # Deletions take at most half the budget, so long prompts still gain words.
        deletions = min(len(words), max(1, count // 2))
        for position in sorted(rng.choice(len(words), size=deletions, replace=False)):
            edits[" ".join(words[:position] + words[position + 1 :])] = None
    # Words nearer the top of the list are tried more often.
    weights = 1.0 / np.arange(1, len(additions) + 1)
    weights /= weights.sum()
    attempts = 0
    while len(edits) < count and attempts < 4 * count:
        attempts += 1
        word = additions[int(rng.choice(len(additions), p=weights))]
        full = len(words) >= MAX_WORDS  # a full prompt only gets substitutions
        position = int(rng.integers(len(words) + (0 if full else 1)))
        substitute = position < len(words) and (full or rng.random() < 0.5)
        if substitute:
            edited = [*words[:position], word, *words[position + 1 :]]
        else:
            edited = [*words[:position], word, *words[position:]]
        if not _repeats_a_neighbour(edited, position):
            edits[" ".join(edited)] = None
    edits.pop(text, None)
    return list(edits)[:count]


def _repeats_a_neighbour(words: list[str], position: int) -> bool:
    """Whether the word at ``position`` doubles the one before or after it ("reset reset"):
    such an edit may nudge the cosine but never reads as English."""
    word = words[position].lower()
    return any(
        0 <= other < len(words) and words[other].lower() == word
        for other in (position - 1, position + 1)
    )

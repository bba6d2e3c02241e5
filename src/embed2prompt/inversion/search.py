"""The embedding-feedback search: from first guesses to the prompt closest to a target.

One pass ranks the first guesses (the inverter's own and the prompt bank's nearest
texts) by the cosine of their embeddings to the target. Each refinement step then

1. **proposes**, for each hypothesis kept (a beam per target), word edits guided by the
   residual (:mod:`lexical_search`), the one-token edits the inverter itself finds
   likeliest and guesses re-decoded away from its error (:mod:`moves`), as the budget
   asks;
2. **ranks** what is new by embedding it: each text is scored once per target;
3. **steps**: keeps the best few (by cosine, or cosine plus a fluency weight) as the
   next beam, and records the best cosine (the trace) and the best distinct texts.

Where the cosines are measured is the :class:`Feedback`: the inverter's own embedder
(native), or, for another embedder's vectors mapped by an aligner, that embedder itself
(foreign: the space the user will measure in) or the inverter's embedder against the
mapped target (mapped). The inverter's moves work in the inverter's space (a hypothesis
embedded by a foreign embedder is mapped there by the aligner). The word edits work in
the feedback's own space, with the lexicon as that embedder embeds it, so that no map's
error stands between them and the target; unless a foreign feedback brings no lexicon,
and they follow the mapped residual in the inverter's space.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder
from embed2prompt.inversion.budget import SearchBudget
from embed2prompt.inversion.lexical_search import Lexicon, propose_edits
from embed2prompt.inversion.moves import InverterMoves
from embed2prompt.inversion.retrieval import PromptBank
from embed2prompt.inversion.seeding import vector_seed

Vectors = npt.NDArray[np.float32]
Space = Literal["native", "foreign", "mapped"]

# Distinct texts kept per target for the pipeline's refinement variants.
_CANDIDATES_KEPT = 8


@dataclass
class Hypothesis:
    text: str
    cosine: float  # to the target, in the feedback's space
    vector: Vectors  # its embedding in the inverter's space (re-decoding, token edits)
    # Its embedding in the feedback's space (the word edits' residual): ``vector`` itself
    # but with foreign feedback, where ``vector`` is this one mapped.
    measured: Vectors
    # How well the text reads (:meth:`InverterMoves.fluency`: a mean log-probability a
    # token under the inverter's model). Scored only when asked.
    fluency: float | None = None

    def score(self, weight: float) -> float:
        return self.cosine + weight * (self.fluency or 0.0)


@dataclass(frozen=True)
class InversionResult:
    """The best prompt found, its cosine to the target, and how the search went."""

    prompt: str
    cosine: float
    # The prompt-so-far's cosine after each step (the first: the best first guess's): it
    # never falls when hypotheses are ranked by cosine alone (fluency 0), and may where
    # fluency buys readability.
    trace: list[float] = field(default_factory=list)
    # Texts embedded for this target (a target stops refining once it reaches the
    # budget's ``max_embedder_calls``; the step that reaches it may pass it).
    embedder_calls: int = 0
    seconds: float = 0.0  # the batch's wall time over its targets
    # The best few distinct texts scored during the search, best first (the prompt is the
    # first): the pipeline's refinement variants come from here.
    candidates: list[tuple[str, float]] = field(default_factory=list)
    # Where ``cosine`` was measured: "native" (the inverter's embedder, the target's own
    # space), "foreign" (the aligner's embedder, the target's own space) or "mapped" (the
    # inverter's embedder, against the target mapped by an aligner).
    space: Space = "native"


@dataclass(frozen=True)
class Feedback:
    """Where hypotheses are judged: the embedder that embeds them, the (n, D) unit
    targets their cosines are measured against, and the map of that embedder's vectors
    into the inverter's space (``None``: they are the inverter's)."""

    embedder: Embedder
    targets: Vectors
    space: Space = "native"
    to_inverter: Callable[[Vectors], Vectors] | None = None
    # Foreign feedback: the lexicon as its embedder embeds it, for word edits in its
    # space (``None``: the edits follow the mapped residual, with the inverter's lexicon).
    lexicon: Callable[[], Awaitable[Lexicon]] | None = None

    @property
    def edits_in_own_space(self) -> bool:
        """Whether word edits follow the residual in this feedback's space."""
        return self.space != "foreign" or self.lexicon is not None


class Search:
    """The search of one inverter: its decoding moves, its lexicon (loaded on first use)
    and its prompt bank (``None``: retrieval off)."""

    def __init__(
        self,
        moves: InverterMoves,
        lexicon: Callable[[], Awaitable[Lexicon]],
        bank: Callable[[], PromptBank | None],
    ) -> None:
        self.moves = moves
        self._lexicon = lexicon
        self._bank = bank

    async def run(
        self, targets: Vectors, feedback: Feedback, budget: SearchBudget
    ) -> list[InversionResult]:
        """The results for ``targets`` ((n, T) unit rows in the inverter's space)."""
        started = time.perf_counter()
        state = _State(targets, [vector_seed(t, self.moves.seed) for t in targets])
        await self._first_pass(state, feedback, budget)
        lexicon = None
        if budget.steps and budget.edits:
            lexicon = await (feedback.lexicon or self._lexicon)()
        for step in range(budget.steps if budget.proposes else 0):
            if time.perf_counter() - started >= budget.max_seconds:
                break
            # Each target stops on its own once it has used its embedder calls.
            active = [i for i, calls in enumerate(state.calls) if calls < budget.max_embedder_calls]
            if not active:
                break
            proposals = await self._propose(state, feedback, active, step, budget, lexicon)
            ranked = await self._rank(state, proposals, feedback)
            await self._step(state, ranked, active, budget)
        return state.results(time.perf_counter() - started, feedback.space)

    async def _first_pass(self, state: _State, feedback: Feedback, budget: SearchBudget) -> None:
        """The inverter's guesses and the bank's nearest texts, ranked by cosine alone."""
        guesses = await asyncio.to_thread(self.moves.guesses, state.targets, budget.candidates)
        bank = self._bank() if budget.neighbours else None
        if bank is not None:
            nearest = await asyncio.to_thread(bank.nearest, state.targets, budget.neighbours)
            for own, retrieved in zip(guesses, nearest, strict=True):
                own.extend(retrieved)
        ranked = await self._rank(state, guesses, feedback)
        state.best_seen = [pool[:_CANDIDATES_KEPT] for pool in ranked]
        state.beams = [pool[: budget.beam] for pool in ranked]
        state.traces = [[pool[0].cosine] for pool in state.beams]

    async def _propose(
        self,
        state: _State,
        feedback: Feedback,
        active: list[int],
        step: int,
        budget: SearchBudget,
        lexicon: Lexicon | None,
    ) -> list[list[str]]:
        """New texts for each active target's beam; none for the others."""
        targets = state.targets
        proposals: list[list[str]] = [[] for _ in targets]
        owners = [index for index in active for _ in state.beams[index]]
        kept = [h for index in active for h in state.beams[index]]
        if budget.strength > 0:
            # The inverter's guesses conditioned on target + strength * (target -
            # hypothesis): the direction that corrects each hypothesis's error.
            hypotheses = np.stack([h.vector for h in kept])
            shifted = targets[owners] + budget.strength * (targets[owners] - hypotheses)
            shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
            guesses = await asyncio.to_thread(
                self.moves.guesses, shifted.astype(np.float32), budget.candidates
            )
            for owner, texts in zip(owners, guesses, strict=True):
                proposals[owner].extend(texts)
        if budget.token_edits:
            written = await asyncio.to_thread(
                self.moves.token_edits,
                [h.text for h in kept],
                targets[owners],
                budget.token_edits,
            )
            for owner, texts in zip(owners, written, strict=True):
                proposals[owner].extend(texts)
        if lexicon is not None:
            own = feedback.edits_in_own_space
            for index in active:
                rng = np.random.default_rng([state.seeds[index], step])
                for hypothesis in state.beams[index]:
                    proposals[index].extend(
                        propose_edits(
                            hypothesis.text,
                            hypothesis.measured if own else hypothesis.vector,
                            feedback.targets[index] if own else targets[index],
                            lexicon,
                            rng,
                            count=budget.edits,
                        )
                    )
        return proposals

    async def _rank(
        self, state: _State, proposals: Sequence[list[str]], feedback: Feedback
    ) -> list[list[Hypothesis]]:
        """Each target's beam plus its new proposals, best cosine first; counts the texts
        embedded for each target. A text scored before is not scored again: it is in the
        beam, or it fell below the beam's worst, which only rises, so it can never enter
        it again."""
        fresh: list[list[str]] = []
        for texts, scored in zip(proposals, state.seen, strict=True):
            fresh.append([t for t in dict.fromkeys(texts) if t not in scored])
            scored.update(fresh[-1])
        flat = [text for texts in fresh for text in texts]
        if flat:
            embedded = await feedback.embedder.embed(flat)
            in_inverter = feedback.to_inverter(embedded) if feedback.to_inverter else embedded
        else:
            embedded = np.zeros((0, feedback.targets.shape[1]), dtype=np.float32)
            in_inverter = np.zeros((0, state.targets.shape[1]), dtype=np.float32)
        ranked, position = [], 0
        for index, texts in enumerate(fresh):
            rows = slice(position, position + len(texts))
            position += len(texts)
            cosines = embedded[rows] @ feedback.targets[index]
            merged = state.beams[index] + [
                Hypothesis(text, float(cosine), vector, measured)
                for text, cosine, vector, measured in zip(
                    texts, cosines, in_inverter[rows], embedded[rows], strict=True
                )
            ]
            ranked.append(sorted(merged, key=lambda h: -h.cosine))
            state.calls[index] += len(texts)
        return ranked

    async def _step(
        self,
        state: _State,
        ranked: list[list[Hypothesis]],
        active: list[int],
        budget: SearchBudget,
    ) -> None:
        """The next beams from the ranked pools, the traces and the best texts seen."""
        state.best_seen = [
            _best_distinct(kept + pool, _CANDIDATES_KEPT)
            for kept, pool in zip(state.best_seen, ranked, strict=True)
        ]
        ranked = await self._prefer_fluent(ranked, state.targets, budget)
        state.beams = [pool[: budget.beam] for pool in ranked]
        for index in active:
            state.traces[index].append(state.beams[index][0].cosine)

    async def _prefer_fluent(
        self, pools: list[list[Hypothesis]], targets: Vectors, budget: SearchBudget
    ) -> list[list[Hypothesis]]:
        """Each pool (best cosine first) with its first few reordered by cosine plus
        ``fluency`` times fluency; the rest stay behind them. Only that shortlist is
        scored (each text once, cached on the hypothesis): the inverter's forward pass
        over a text costs about as much as embedding it."""
        weight, shortlist = budget.fluency, budget.fluency_shortlist
        if weight <= 0:
            return pools
        unscored = [
            (index, h)
            for index, pool in enumerate(pools)
            for h in pool[:shortlist]
            if h.fluency is None
        ]
        if unscored:
            scores = await asyncio.to_thread(
                self.moves.fluency,
                [h.text for _, h in unscored],
                targets[[index for index, _ in unscored]],
            )
            for (_, hypothesis), score in zip(unscored, scores, strict=True):
                hypothesis.fluency = score
        return [
            sorted(pool[:shortlist], key=lambda h: -h.score(weight)) + pool[shortlist:]
            for pool in pools
        ]


@dataclass
class _State:
    """One batch's search so far, a list entry per target."""

    targets: Vectors
    seeds: list[int]
    beams: list[list[Hypothesis]] = field(default_factory=list)
    best_seen: list[list[Hypothesis]] = field(default_factory=list)
    traces: list[list[float]] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    seen: list[set[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.targets)
        self.beams = [[] for _ in range(count)]
        self.calls = [0] * count
        self.seen = [set() for _ in range(count)]

    def results(self, seconds: float, space: Space) -> list[InversionResult]:
        count = len(self.targets)
        return [
            InversionResult(
                beam[0].text,
                beam[0].cosine,
                trace,
                calls,
                seconds / count,
                [
                    (h.text, h.cosine)
                    for h in _best_distinct([beam[0], *kept], _CANDIDATES_KEPT, first=beam[0])
                ],
                space,
            )
            for beam, trace, kept, calls in zip(
                self.beams, self.traces, self.best_seen, self.calls, strict=True
            )
        ]


def _best_distinct(
    hypotheses: list[Hypothesis], count: int, *, first: Hypothesis | None = None
) -> list[Hypothesis]:
    """The ``count`` best hypotheses by cosine, each text once; ``first`` (the prompt
    chosen, which with a fluency weight may not have the best cosine) leads."""
    unique = {h.text: h for h in sorted(hypotheses, key=lambda h: h.cosine)}
    ranked = sorted(unique.values(), key=lambda h: -h.cosine)
    if first is not None:
        ranked = [first, *(h for h in ranked if h.text != first.text)]
    return ranked[:count]

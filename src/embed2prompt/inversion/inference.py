"""From an embedding back to a prompt: ``EmbeddingToPromptInference``.

One pass decodes the inverter's best guesses (greedy and sampled candidates), adds the
training texts nearest to the target (the checkpoint's prompt bank, :mod:`retrieval`), and
keeps the one whose own embedding is closest to the target. Refinement then uses the
embedder as feedback, which is where vec2text's gains come from. Each step proposes, for
each of the best few hypotheses (a sequence beam), word edits guided by the residual
(:mod:`lexical_search`), with ``completions`` > 0 the inverter's rewrites of the
hypothesis's tail (its first part kept, the rest written for the target: readable moves
no word edit makes), and with ``strength`` > 0 new guesses from the inverter conditioned
away from the hypothesis's error (``target + strength * (target - hypothesis)``); all
are embedded and the best few by cosine kept, or, with ``fluency`` >
0, by cosine plus that weight times the inverter's mean token log-probability of the text
given the target (readability, which the pipeline's LLM rewards). Budgets: steps, beam
width, edits per hypothesis, embedder calls, time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.alignment import Aligner
from embed2prompt.inversion.decoding import sample
from embed2prompt.inversion.inverters import load_inverter
from embed2prompt.inversion.lexical_search import Lexicon, propose_edits
from embed2prompt.inversion.retrieval import PromptBank, load_bank_for

Vectors = npt.NDArray[np.float32]

DEFAULT_MODEL = Path("models/best_model.pt")
# The fluent inverter: an adapter into the frozen SmolLM2 (prefix_lm.py). Its prompts read
# as English; the default's refine closer to their targets (BENCHMARKS.md).
FLUENT_MODEL = Path("models/fluent_model.pt")
# Where the repository keeps the default model, for an editable install used from
# another folder: the seed's relative path then still finds it.
_REPOSITORY = Path(__file__).resolve().parents[3]
# The refinement budget measured best per embedder call (BENCHMARKS.md): a beam of one,
# many cheap steps of few edits, rather than a wide beam.
DEFAULT_BEAM = 1
DEFAULT_EDITS = 32
# Re-decoding the inverter at each step, conditioned away from the hypothesis's error, is
# off by default: with the default model no such guess ever beat the word edits after the
# first pass (12 steps gave identical prompts without it), and it cost a third of the time.
DEFAULT_STRENGTH = 0.0
# N completions of each hypothesis by the inverter (its first 1/(N+1), ..., N/(N+1) of
# tokens kept, the rest rewritten): off by default. With 2 a step, 12 steps gave
# in-domain 0.919 against 0.914 and prompts that read as English 30% against 24% of the
# time (out-of-domain unchanged: 0.917, 0%), at 8-19% more time (BENCHMARKS.md).
DEFAULT_COMPLETIONS = 0
_SAMPLING_TEMPERATURE = 0.8  # candidates besides the greedy one: varied, still fluent
_SAMPLING_TOP_K = 40
_CANDIDATES_KEPT = 8
# The first guesses: the greedy text and 2 samples from the inverter, and the 2 training
# texts nearest to the target (from the checkpoint's prompt bank, when it has one). More of
# either measured no better (8 and 8: one pass 0.719 / 0.617, 12 steps 0.927 / 0.915;
# 3 and 2: 0.716 / 0.611, 0.926 / 0.916) at less than half the one-pass speed
# (10 against 30 targets a second in-domain, BENCHMARKS.md): decoding dominates one pass.
DEFAULT_CANDIDATES = 3
DEFAULT_NEIGHBOURS = 2
# The weight of fluency (the inverter's mean token log-probability given the target:
# -3.4 for test sentences of its corpus, -4.4 for out-of-domain questions, about -6 for
# the same words sorted) against cosine when hypotheses are ranked; 0: cosine alone.
DEFAULT_FLUENCY = 0.0
# The best by cosine that fluency may reorder. Scoring them costs a forward pass of the
# inverter each: 8 measured as good as 6 (pipeline generations 0.753 / 0.755) but made
# the demo 5 s slower; 4 lost quality (0.737).
_FLUENCY_SHORTLIST = 6


@dataclass(frozen=True)
class _Budget:
    steps: int
    beam: int
    edits: int
    strength: float
    max_embedder_calls: float
    max_seconds: float
    fluency: float = 0.0
    completions: int = 0
    # The best by cosine that fluency may reorder (scoring costs a forward pass each).
    fluency_shortlist: int = _FLUENCY_SHORTLIST

    def __post_init__(self) -> None:
        if (
            self.steps < 0
            or self.beam < 1
            or self.edits < 0
            or self.strength < 0
            or not 0 <= self.fluency < float("inf")
            or self.completions < 0
            or self.fluency_shortlist < 1
        ):
            raise InputError(
                "steps, edits, strength, fluency and completions must be >= 0 and beam >= 1, "
                f"got steps={self.steps}, beam={self.beam}, edits={self.edits}, "
                f"strength={self.strength}, fluency={self.fluency}, "
                f"completions={self.completions}"
            )


# The refinement a checkpoint gets when the caller leaves a budget out; a checkpoint's
# JSON may name its own (``"search": {...}``), measured for that model.
_LIBRARY_SEARCH: dict[str, Any] = {
    "beam": DEFAULT_BEAM,
    "edits": DEFAULT_EDITS,
    "strength": DEFAULT_STRENGTH,
    "fluency": DEFAULT_FLUENCY,
    "completions": DEFAULT_COMPLETIONS,
    "fluency_shortlist": _FLUENCY_SHORTLIST,
}


def _search_defaults(path: Path, own: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(own) - set(_LIBRARY_SEARCH))
    if unknown:
        raise ConfigurationError(
            f"{path}'s search names {unknown}; expected some of {sorted(_LIBRARY_SEARCH)}"
        )
    return {**_LIBRARY_SEARCH, **own}


@dataclass
class _Hypothesis:
    text: str
    cosine: float
    vector: npt.NDArray[np.float32]
    # The inverter's mean log-probability a token of the text, given the target: how
    # likely the inverter finds it as a text of this embedding. Scored only when asked.
    fluency: float | None = None

    def score(self, weight: float) -> float:
        return self.cosine + weight * (self.fluency or 0.0)


@dataclass(frozen=True)
class InversionResult:
    """The best prompt found, its cosine to the target, and how the search went."""

    prompt: str
    cosine: float
    # The prompt-so-far's cosine after each step: it never falls when hypotheses are
    # ranked by cosine alone (fluency 0), and may where fluency buys readability.
    trace: list[float] = field(default_factory=list)
    # Texts embedded for this target (a target stops refining once it reaches the
    # budget's ``max_embedder_calls``; the step that reaches it may pass it).
    embedder_calls: int = 0
    seconds: float = 0.0  # the batch's wall time over its targets
    # The best few distinct texts scored during the search, best first (the prompt is the
    # first): the pipeline's refinement variants come from here.
    candidates: list[tuple[str, float]] = field(default_factory=list)


def check_embeddings(
    raw: object, dimension: int, *, first_index: int = 0
) -> npt.NDArray[np.float32]:
    """(n, d) unit rows, or an :class:`InputError` naming the row and the problem.

    ``first_index`` is the index of ``raw``'s first row in the caller's numbering (a
    chunk of a streamed upload), so that errors name the row the caller knows.
    """
    if isinstance(raw, list | tuple) and raw and isinstance(raw[0], list | tuple | np.ndarray):
        _check_rows(raw, dimension, first_index)  # name the row that is not numbers
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("embeddings must be numbers: a vector or a list of vectors") from None
    if array.size == 0:
        raise InputError("embeddings are empty; expected a non-empty list of vectors")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InputError(
            f"embeddings must be a vector or a non-empty list of vectors, got shape {array.shape}"
        )
    if array.shape[1] != dimension:
        raise InputError(
            f"embeddings have dimension {array.shape[1]}, but this model inverts "
            f"{dimension}-dimensional embeddings"
        )
    for index, row in enumerate(array, start=first_index):
        if not np.isfinite(row).all():
            raise InputError(f"embedding {index} contains NaN or infinite values")
        if not np.any(row):
            raise InputError(f"embedding {index} is all zeros; it has no direction to invert")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (array / norms).astype(np.float32)
    return unit


def _read_lexicon_cache(path: Path, key: str, count: int) -> npt.NDArray[np.float32] | None:
    """The cached word vectors, if the cache is for these words and this embedder."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) != key or cached["codes"].shape[0] != count:
                return None
            return _dequantise(cached["codes"], cached["scales"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None


def _write_lexicon_cache(
    path: Path, key: str, codes: npt.NDArray[np.int8], scales: Vectors
) -> None:
    try:
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(temporary, key=np.array(key), codes=codes, scales=scales)
        temporary.replace(path)
    except OSError:
        pass  # a read-only model folder: embed the lexicon again next time


def _quantise(vectors: Vectors) -> tuple[npt.NDArray[np.int8], Vectors]:
    """int8 codes and a scale a row: the lexicon's cache at a quarter of float32's size
    (the words are only ranked by their dot product with a residual)."""
    scales = (np.abs(vectors).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
    scales[scales == 0] = 1.0
    codes = np.round(vectors / scales).astype(np.int8)
    return codes, scales


def _dequantise(codes: npt.NDArray[np.int8], scales: Vectors) -> Vectors:
    vectors: Vectors = codes.astype(np.float32) * scales.astype(np.float32)
    return vectors


def locate_model(path: str | Path) -> Path:
    """``path``, or for a relative path that is not here, the repository's copy of it."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (_REPOSITORY / path).exists():
        return _REPOSITORY / path
    return path


def _vector_seed(vector: npt.NDArray[np.float32], seed: int) -> int:
    """A 63-bit seed from a vector and a base seed. The vector is rounded first, so that
    the last bits a batched computation may change do not change the seed."""
    rounded = np.round(np.asarray(vector, dtype=np.float64) * 1e4).astype(np.int32)
    digest = hashlib.blake2b(rounded.tobytes(), digest_size=8, key=str(seed).encode())
    return int.from_bytes(digest.digest(), "little") >> 1


def _check_rows(rows: list[object] | tuple[object, ...], dimension: int, first_index: int) -> None:
    for index, row in enumerate(rows, start=first_index):
        try:
            vector = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"embedding {index} is not a list of numbers") from None
        if vector.ndim != 1 or vector.shape[0] != dimension:
            raise InputError(
                f"embedding {index} has shape {vector.shape}, but this model inverts "
                f"{dimension}-dimensional embeddings"
            )


class EmbeddingToPromptInference:
    """Inverts embeddings of the embedder a checkpoint was trained for.

    ``embedder`` defaults to the local all-MiniLM-L6-v2 when the checkpoint was trained
    on it; pass the matching embedder for checkpoints trained on another one.
    ``neighbours`` training texts nearest to each target join the first guesses when the
    checkpoint has a prompt bank (``NAME.bank.npz``); 0 turns retrieval off.
    With ``aligner`` (an :class:`Aligner` or the path of one), the inputs are another
    embedder's vectors: ``dimension`` is that embedder's, each target is mapped into the
    inverter's space first, and the cosines reported are measured in the inverter's space.
    """

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        *,
        embedder: Embedder | None = None,
        candidates: int = DEFAULT_CANDIDATES,
        neighbours: int = DEFAULT_NEIGHBOURS,
        seed: int = 0,
        aligner: Aligner | str | Path | None = None,
    ) -> None:
        self.model_path = locate_model(model_path)
        self.text_model, self.info = load_inverter(self.model_path)
        self.search = _search_defaults(self.model_path, self.info.search)
        if embedder is None:
            if self.info.embedder_name != "all-MiniLM-L6-v2":
                raise ConfigurationError(
                    f"{model_path} inverts {self.info.embedder_name} embeddings; "
                    "pass that embedder (embedder=...)"
                )
            from embed2prompt.embedders.local import LocalEmbedder

            embedder = LocalEmbedder()
        if embedder.dimension != self.info.embedder_dimension:
            raise ConfigurationError(
                f"{model_path} expects {self.info.embedder_dimension}-dimensional embeddings "
                f"but {embedder.name} gives {embedder.dimension}"
            )
        self.embedder = embedder
        if aligner is not None and not isinstance(aligner, Aligner):
            aligner = Aligner.load(aligner)
        if aligner is not None and (
            aligner.info.target_name != self.info.embedder_name
            or aligner.info.target_dimension != self.info.embedder_dimension
        ):
            raise ConfigurationError(
                f"{aligner.describe()} maps into {aligner.info.target_name} "
                f"({aligner.info.target_dimension} dimensions), but {model_path} inverts "
                f"{self.info.embedder_name} ({self.info.embedder_dimension})"
            )
        self.aligner = aligner
        if candidates < 1:
            raise InputError(f"candidates must be >= 1 (the greedy text), got {candidates}")
        self.candidates = candidates
        if neighbours < 0:
            raise InputError(f"neighbours must be >= 0, got {neighbours}")
        self.neighbours = neighbours
        self.seed = seed
        self._lexicon_cache: Lexicon | None = None
        self.bank: PromptBank | None = (
            load_bank_for(self.model_path, self.info.embedder_name, self.info.embedder_dimension)
            if neighbours
            else None
        )

    @property
    def dimension(self) -> int:
        """The dimension of the vectors it takes: the aligner's foreign one, if any."""
        if self.aligner is not None:
            return self.aligner.dimension
        return self.info.embedder_dimension

    def invert(self, embedding: object, **budget: Any) -> InversionResult:
        """Invert one vector (blocking). Budget keywords as in :meth:`invert_batch`."""
        return self.invert_batch(embedding, **budget)[0]

    def invert_batch(
        self,
        embeddings: object,
        *,
        steps: int = 0,
        beam: int | None = None,
        edits: int | None = None,
        strength: float | None = None,
        max_embedder_calls: float = float("inf"),
        max_seconds: float = float("inf"),
        fluency: float | None = None,
        completions: int | None = None,
    ) -> list[InversionResult]:
        """Invert a batch (blocking). ``steps`` rounds of refinement keep a ``beam`` of the
        best hypotheses per target; each round tries ``edits`` word edits of each of them
        (0: none), with ``completions`` > 0 that many rewrites of each one's tail by the
        inverter, and with ``strength`` > 0 new guesses from the inverter conditioned on
        ``target + strength * (target - hypothesis)``. A target stops
        refining once it has made ``max_embedder_calls`` embedder calls (counted for each
        target), the whole batch once it has spent ``max_seconds``. With ``fluency`` > 0
        the refinement steps keep hypotheses by their cosine plus ``fluency`` times their
        mean token log-probability under the inverter (a text it would write for the
        target reads as English), so a prompt may trade a little cosine for readability;
        0 ranks by cosine alone, as one pass always does. A budget left out is the
        checkpoint's own (its ``search``: the fluent inverter refines differently from
        the scratch one), else the library's default."""
        return asyncio.run(
            self.ainvert_batch(
                embeddings,
                steps=steps,
                beam=beam,
                edits=edits,
                strength=strength,
                max_embedder_calls=max_embedder_calls,
                max_seconds=max_seconds,
                fluency=fluency,
                completions=completions,
            )
        )

    async def ainvert_batch(
        self,
        embeddings: object,
        *,
        steps: int = 0,
        beam: int | None = None,
        edits: int | None = None,
        strength: float | None = None,
        max_embedder_calls: float = float("inf"),
        max_seconds: float = float("inf"),
        fluency: float | None = None,
        completions: int | None = None,
    ) -> list[InversionResult]:
        """The same, for callers inside an event loop."""
        if self.aligner is not None:
            embeddings = self.aligner.map(embeddings)  # errors name the aligner
        targets = check_embeddings(embeddings, self.info.embedder_dimension)
        given = {
            "beam": beam,
            "edits": edits,
            "strength": strength,
            "fluency": fluency,
            "completions": completions,
        }
        chosen = {**self.search, **{k: v for k, v in given.items() if v is not None}}
        budget = _Budget(
            steps=steps,
            max_embedder_calls=max_embedder_calls,
            max_seconds=max_seconds,
            **chosen,
        )
        return await self._invert(targets, budget)

    async def _invert(
        self, targets: npt.NDArray[np.float32], budget: _Budget
    ) -> list[InversionResult]:
        # Every random choice for a target comes from its own seed (a hash of the target
        # and the inverter's seed), so a target gets the same prompt alone or in any batch.
        started = time.perf_counter()
        target_seeds = [_vector_seed(target, self.seed) for target in targets]
        count = targets.shape[0]
        # Step 0: greedy and sampled candidates from the target itself, and the training
        # texts nearest to it.
        seen: list[set[str]] = [set() for _ in range(count)]
        first_guesses = await asyncio.to_thread(self._decode, targets)
        if self.bank is not None:
            nearest = await asyncio.to_thread(self.bank.nearest, targets, self.neighbours)
            for own_guesses, retrieved in zip(first_guesses, nearest, strict=True):
                own_guesses.extend(retrieved)
        beams, calls = await self._rank([[] for _ in range(count)], first_guesses, targets, seen)
        best_seen = [pool[:_CANDIDATES_KEPT] for pool in beams]
        beams = [pool[: budget.beam] for pool in beams]
        traces = [[pool[0].cosine] for pool in beams]
        lexicon = await self._lexicon() if budget.steps and budget.edits else None
        # With neither word edits nor re-decoding nor completions a step would propose
        # nothing.
        proposing = budget.edits or budget.strength > 0 or budget.completions
        steps = budget.steps if proposing else 0
        for step in range(steps):
            if time.perf_counter() - started >= budget.max_seconds:
                break
            # Each target stops on its own once it has used its embedder calls.
            active = [index for index in range(count) if calls[index] < budget.max_embedder_calls]
            if not active:
                break
            proposals: list[list[str]] = [[] for _ in range(count)]
            if budget.strength > 0:
                # The inverter's new guesses, conditioned on target + strength * (target -
                # hypothesis): the direction that corrects each hypothesis's error.
                owners = [index for index in active for _ in beams[index]]
                hypotheses = np.stack([h.vector for index in active for h in beams[index]])
                shifted = targets[owners] + budget.strength * (targets[owners] - hypotheses)
                shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
                guesses = await asyncio.to_thread(self._decode, shifted.astype(np.float32))
                for owner, texts in zip(owners, guesses, strict=True):
                    proposals[owner].extend(texts)
            if budget.completions:
                owners = [index for index in active for _ in beams[index]]
                written = await asyncio.to_thread(
                    self._complete,
                    [h.text for index in active for h in beams[index]],
                    targets[owners],
                    budget.completions,
                )
                for owner, texts in zip(owners, written, strict=True):
                    proposals[owner].extend(texts)
            if lexicon is not None:
                for index in active:
                    rng = np.random.default_rng([target_seeds[index], step])
                    for hypothesis in beams[index]:
                        proposals[index].extend(
                            propose_edits(
                                hypothesis.text,
                                hypothesis.vector,
                                targets[index],
                                lexicon,
                                rng,
                                count=budget.edits,
                            )
                        )
            ranked, more = await self._rank(beams, proposals, targets, seen)
            calls = [a + b for a, b in zip(calls, more, strict=True)]
            best_seen = [
                _best_distinct(kept + pool, _CANDIDATES_KEPT)
                for kept, pool in zip(best_seen, ranked, strict=True)
            ]
            ranked = await self._prefer_fluent(
                ranked, targets, budget.fluency, budget.fluency_shortlist
            )
            beams = [pool[: budget.beam] for pool in ranked]
            for index in active:
                traces[index].append(beams[index][0].cosine)
        seconds = time.perf_counter() - started
        return [
            InversionResult(
                pool[0].text,
                pool[0].cosine,
                trace,
                target_calls,
                seconds / count,
                [
                    (h.text, h.cosine)
                    for h in _best_distinct([pool[0], *kept], _CANDIDATES_KEPT, first=pool[0])
                ],
            )
            for pool, trace, kept, target_calls in zip(beams, traces, best_seen, calls, strict=True)
        ]

    async def _prefer_fluent(
        self,
        pools: list[list[_Hypothesis]],
        targets: npt.NDArray[np.float32],
        weight: float,
        shortlist: int,
    ) -> list[list[_Hypothesis]]:
        """Each pool (best cosine first) with its first few reordered by cosine plus
        ``weight`` times fluency; the rest stay behind them. Only that shortlist is scored
        (each text once, cached on the hypothesis): the inverter's forward pass over a
        text costs about as much as embedding it."""
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
                self._fluency, [h.text for _, h in unscored], targets[[i for i, _ in unscored]]
            )
            for (_, hypothesis), score in zip(unscored, scores, strict=True):
                hypothesis.fluency = score
        return [
            sorted(pool[:shortlist], key=lambda h: -h.score(weight)) + pool[shortlist:]
            for pool in pools
        ]

    def _fluency(self, texts: list[str], conditioning: npt.NDArray[np.float32]) -> list[float]:
        """Mean token log-probability of each text given its target, in one batch."""
        return self.text_model.fluency(texts, conditioning)

    async def _lexicon(self) -> Lexicon:
        """The checkpoint's lexicon with its embeddings, built on first use and kept
        beside the checkpoint (``NAME.lexicon.npz``), since embedding 20,000 words takes
        about 20 s that every run would otherwise pay again."""
        if self._lexicon_cache is None:
            words = list(dict.fromkeys(self.info.lexicon or self.text_model.vocabulary_words()))
            cache = self.model_path.with_suffix(".lexicon.npz")
            key = hashlib.sha256("\n".join([self.embedder.name, *words]).encode()).hexdigest()
            vectors = _read_lexicon_cache(cache, key, len(words))
            if vectors is None:
                codes, scales = _quantise(await self.embedder.embed(words))
                _write_lexicon_cache(cache, key, codes, scales)
                # Rounded as the cache stores them: the first run searches as later ones do.
                vectors = _dequantise(codes, scales)
            self._lexicon_cache = Lexicon(words, vectors)
        return self._lexicon_cache

    def _complete(
        self, texts: list[str], conditioning: npt.NDArray[np.float32], per_text: int
    ) -> list[list[str]]:
        """For each text, up to ``per_text`` greedy completions by the inverter
        conditioned on the text's target: its first 1/(N+1), ..., N/(N+1) of tokens kept
        (N = ``per_text``), the rest rewritten. Readable moves that a word edit cannot
        make. A text too short to cut that often gets fewer; one of a single token,
        none (its only cut would keep it whole)."""
        prefixes: list[list[int]] = []
        owners: list[int] = []
        for index, ids in enumerate(self.text_model.encode(texts)):
            cuts = {len(ids) * part // (per_text + 1) for part in range(1, per_text + 1)}
            for cut in sorted(cuts - {0}):
                prefixes.append(ids[:cut])
                owners.append(index)
        if not prefixes:
            return [[] for _ in texts]
        rows = sample(
            self.text_model.decoder,
            torch.from_numpy(np.ascontiguousarray(conditioning[owners])),
            temperature=0.0,
            prefixes=prefixes,
        )
        written: list[list[str]] = [[] for _ in texts]
        for owner, text in zip(owners, self.text_model.decode(rows), strict=True):
            if text:
                written[owner].append(text)
        return written

    def _decode(self, conditioning: npt.NDArray[np.float32]) -> list[list[str]]:
        """Greedy plus ``candidates - 1`` sampled texts for each conditioning vector, decoded
        as one batch; each vector's samples seeded by the vector itself."""
        count = conditioning.shape[0]
        temperatures = torch.full((self.candidates, count), _SAMPLING_TEMPERATURE)
        temperatures[0] = 0.0  # the first candidate of each vector is the greedy one
        vector_seeds = torch.tensor(
            [_vector_seed(vector, self.seed) for vector in conditioning], dtype=torch.int64
        )
        # Row r of the batch is candidate r // count of vector r % count.
        candidate = torch.arange(self.candidates, dtype=torch.int64).repeat_interleave(count)
        ids = sample(
            self.text_model.decoder,
            torch.from_numpy(conditioning).repeat(self.candidates, 1),
            temperature=temperatures.flatten(),
            top_k=_SAMPLING_TOP_K,
            row_seeds=vector_seeds.repeat(self.candidates) + candidate * 7919,
        )
        pools: list[list[str]] = [[] for _ in range(count)]
        for index, text in enumerate(self.text_model.decode(ids)):
            pool = pools[index % count]
            if text and text not in pool:
                pool.append(text)
        return [pool or ["?"] for pool in pools]

    async def _rank(
        self,
        beams: Sequence[list[_Hypothesis]],
        proposals: Sequence[list[str]],
        targets: npt.NDArray[np.float32],
        seen: list[set[str]],
    ) -> tuple[list[list[_Hypothesis]], list[int]]:
        """Each target's beam plus its new proposals, best cosine first, and the number of
        texts embedded for each target. A text scored before is not scored again: it is in
        the beam, or it fell below the beam's worst, which only rises, so it can never
        enter it again."""
        fresh: list[list[str]] = []
        for texts, scored in zip(proposals, seen, strict=True):
            fresh.append([t for t in dict.fromkeys(texts) if t not in scored])
            scored.update(fresh[-1])
        flat = [text for texts in fresh for text in texts]
        vectors = (
            await self.embedder.embed(flat) if flat else np.zeros((0, self.info.embedder_dimension))
        )
        ranked, position = [], 0
        for index, (pool, texts) in enumerate(zip(beams, fresh, strict=True)):
            rows = vectors[position : position + len(texts)]
            position += len(texts)
            cosines = rows @ targets[index]
            merged = pool + [
                _Hypothesis(text, float(c), row)
                for text, c, row in zip(texts, cosines, rows, strict=True)
            ]
            ranked.append(sorted(merged, key=lambda h: -h.cosine))
        return ranked, [len(texts) for texts in fresh]


def _best_distinct(
    hypotheses: list[_Hypothesis], count: int, *, first: _Hypothesis | None = None
) -> list[_Hypothesis]:
    """The ``count`` best hypotheses by cosine, each text once; ``first`` (the prompt
    chosen, which with a fluency weight may not have the best cosine) leads."""
    unique = {h.text: h for h in sorted(hypotheses, key=lambda h: h.cosine)}
    ranked = sorted(unique.values(), key=lambda h: -h.cosine)
    if first is not None:
        ranked = [first, *(h for h in ranked if h.text != first.text)]
    return ranked[:count]

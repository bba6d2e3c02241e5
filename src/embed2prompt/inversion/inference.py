"""From an embedding back to a prompt: ``EmbeddingToPromptInference``.

It holds one inverter (a checkpoint of either kind, :mod:`inverters`), the embedder that
inverter was trained for, the checkpoint's prompt bank and word lexicon, and optionally
an aligner that brings another embedder's vectors into the inverter's space. Each call
resolves a :class:`SearchBudget` (the library's defaults, the checkpoint's own search,
then what the caller asks) and runs the embedding-feedback search (:mod:`search`).

The parts live in their own modules: input checks (:mod:`embed2prompt.inputs`), the
budget (:mod:`budget`), the search loop (:mod:`search`), the inverter's decoding moves
(:mod:`moves`), seeding (:mod:`seeding`), the lexicon's cache (:mod:`lexicon_cache`) and
the shipped models' paths (:mod:`model_paths`).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import ApiError, ConfigurationError
from embed2prompt.inputs import check_embeddings
from embed2prompt.inversion.alignment import Aligner
from embed2prompt.inversion.budget import SearchBudget, model_search
from embed2prompt.inversion.inverters import load_inverter
from embed2prompt.inversion.lexical_search import Lexicon
from embed2prompt.inversion.lexicon_cache import cached_lexicon, shipped_lexicon_path
from embed2prompt.inversion.model_paths import (
    DEFAULT_MODEL,
    SMALL_MODEL,
    default_cache_dir,
    locate_model,
)
from embed2prompt.inversion.moves import InverterMoves
from embed2prompt.inversion.retrieval import PromptBank, load_bank_for
from embed2prompt.inversion.search import Feedback, InversionResult, Search, Space
from embed2prompt.inversion.space_check import foreign_space_warning

__all__ = [
    "DEFAULT_MODEL",
    "SMALL_MODEL",
    "EmbeddingToPromptInference",
    "InversionResult",
    "SearchBudget",
    "check_embeddings",
    "locate_model",
]

Vectors = npt.NDArray[np.float32]


@dataclass
class _Loaded:
    """What an inverter loads once and its copies for other aligners share."""

    bank: PromptBank | None = None
    bank_loaded: bool = False
    lexicons: dict[tuple[str, int, int], Lexicon] = field(default_factory=dict)


class EmbeddingToPromptInference:
    """Inverts embeddings of the embedder a checkpoint was trained for.

    ``embedder`` defaults to the local all-MiniLM-L6-v2 when the checkpoint was trained
    on it; pass the matching embedder for checkpoints trained on another one.
    ``candidates`` and ``neighbours`` set the first pass of the default search (see
    :class:`SearchBudget`; ``neighbours=0`` turns retrieval off and loads no bank).

    With ``aligner`` (an :class:`Aligner` or the path of one), the inputs are another
    embedder's vectors: ``dimension`` is that embedder's and each target is mapped into
    the inverter's space. With ``feedback`` too (that other embedder, callable), the
    search ranks its hypotheses by their cosine in that embedder's own space, which is
    what the user will measure (``space`` "foreign"), and its word edits follow the
    residual there, from the lexicon as that embedder embeds it: the first
    ``feedback_lexicon`` words (``None``: all 20,000, embedded once and cached; ``0``: no
    lexicon, the edits follow the mapped residual in the inverter's space). Without
    ``feedback``, hypotheses are ranked by their cosine to the mapped target in the
    inverter's space ("mapped"). :func:`embed2prompt.backends.
    create_inverter` builds the feedback embedder an aligner records.

    The lexicon's embeddings are read from the checkpoint's shipped ``NAME.lexicon.npz``
    when the embedder is the one it was made by, else cached in ``cache_dir`` (default
    :func:`~embed2prompt.inversion.model_paths.default_cache_dir`); nothing is written
    beside the checkpoint (:mod:`lexicon_cache`).
    """

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        *,
        embedder: Embedder | None = None,
        candidates: int | None = None,
        neighbours: int | None = None,
        seed: int = 0,
        aligner: Aligner | str | Path | None = None,
        feedback: Embedder | None = None,
        feedback_lexicon: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.model_path = locate_model(model_path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.text_model, self.info = load_inverter(self.model_path)
        self._own_search = model_search(self.model_path, self.info.search or {})
        self._first_pass = {"candidates": candidates, "neighbours": neighbours}
        self.aligner: Aligner | None = None
        self.feedback: Embedder | None = None
        self.feedback_lexicon: int | None = None
        self.search = self.search_budget()  # the default: one pass, no refinement
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
        self.seed = seed
        self._loaded = _Loaded()
        if self.search.neighbours:
            self._bank()  # a damaged bank is an error now, not at the first call
        self._search = Search(InverterMoves(self.text_model, seed), self._lexicon, self._bank)
        self._use_aligner(aligner, feedback, feedback_lexicon)

    def with_aligner(
        self,
        aligner: Aligner | str | Path | None,
        *,
        feedback: Embedder | None = None,
        feedback_lexicon: int | None = None,
    ) -> EmbeddingToPromptInference:
        """This inverter for another embedder's vectors (or, with ``None``, for its own),
        sharing the loaded model, bank and lexicons."""
        other = copy.copy(self)
        other._use_aligner(aligner, feedback, feedback_lexicon)
        return other

    def _use_aligner(
        self,
        aligner: Aligner | str | Path | None,
        feedback: Embedder | None,
        feedback_lexicon: int | None,
    ) -> None:
        if aligner is not None and not isinstance(aligner, Aligner):
            aligner = Aligner.load(aligner)
        if aligner is not None and (
            aligner.info.target_name != self.info.embedder_name
            or aligner.info.target_dimension != self.info.embedder_dimension
        ):
            raise ConfigurationError(
                f"{aligner.describe()} maps into {aligner.info.target_name} "
                f"({aligner.info.target_dimension} dimensions), but {self.model_path} inverts "
                f"{self.info.embedder_name} ({self.info.embedder_dimension})"
            )
        if feedback is not None:
            if aligner is None:
                raise ConfigurationError(
                    "feedback is another embedder's: it needs the aligner of that embedder"
                )
            try:
                dimension = feedback.dimension
            except ApiError:  # an API model's dimension is known after its first call
                dimension = aligner.dimension
            if dimension != aligner.dimension:
                raise ConfigurationError(
                    f"the feedback embedder {feedback.name} gives {dimension}-dimensional "
                    f"vectors, but {aligner.describe()} expects {aligner.dimension}"
                )
        if feedback_lexicon is not None and feedback_lexicon < 0:
            raise ConfigurationError(
                f"feedback_lexicon must be a number of words >= 0, got {feedback_lexicon}"
            )
        self.aligner = aligner
        self.feedback = feedback
        self.feedback_lexicon = feedback_lexicon

    @property
    def dimension(self) -> int:
        """The dimension of the vectors it takes: the aligner's foreign one, if any."""
        if self.aligner is not None:
            return self.aligner.dimension
        return self.info.embedder_dimension

    @property
    def space(self) -> Space:
        """Where cosines are measured: "native" (no aligner), "foreign" (the aligner's
        embedder, as feedback) or "mapped" (the inverter's, against mapped targets)."""
        if self.aligner is None:
            return "native"
        return "foreign" if self.feedback is not None else "mapped"

    @property
    def neighbours(self) -> int:
        """Training texts from the prompt bank among the default search's first guesses."""
        return self.search.neighbours

    @property
    def bank(self) -> PromptBank | None:
        """The checkpoint's prompt bank, once a search with retrieval has loaded it."""
        return self._loaded.bank

    def search_budget(
        self,
        *layers: Mapping[str, Any] | None,
        purpose: Mapping[str, Any] | None = None,
        **chosen: Any,
    ) -> SearchBudget:
        """The budget of a search: the library's defaults, a ``purpose``'s (the
        pipeline's), this checkpoint's own search and constructor choices, then each of
        ``layers`` and ``chosen`` (``None`` values: not chosen), the later winning."""
        return SearchBudget().updated(purpose, self._own_search, self._first_pass, *layers, chosen)

    @property
    def expects(self) -> str | None:
        """Who expects :attr:`dimension`, for errors: the aligner (``None``: the model)."""
        if self.aligner is None:
            return None
        info = self.aligner.info
        return (
            f"{self.aligner.describe()} expects {info.foreign_dimension}-dimensional "
            f"{info.foreign_name} embeddings"
        )

    def check_inputs(self, embeddings: object) -> Vectors:
        """(n, d) unit rows of the vectors this inverter takes, or an :class:`InputError`
        naming the row, and with an aligner, which aligner expects what."""
        return check_embeddings(embeddings, self.dimension, expected=self.expects)

    def feedback_for(self, inputs: Vectors) -> Feedback:
        """Where the cosines of checked ``inputs`` are measured: the search's ranking and
        the pipeline's quality evaluation."""
        if self.aligner is None:
            return Feedback(self.embedder, inputs)
        if self.feedback is None:
            return Feedback(self.embedder, self.aligner.map(inputs), "mapped")
        lexicon = None
        if self.feedback_lexicon != 0:
            lexicon = partial(self._lexicon, self.feedback, self.feedback_lexicon)
        return Feedback(self.feedback, inputs, "foreign", self.aligner.map, lexicon)

    def space_warning(self, first_pass: Sequence[float]) -> str | None:
        """A warning when inputs whose first pass reached these best cosines (each
        result's ``trace[0]``) look like another embedder's vectors (see
        :mod:`space_check`); ``None`` otherwise, and always with an aligner."""
        if self.aligner is not None:
            return None
        return foreign_space_warning(first_pass, self.info)

    def invert(self, embedding: object, **budget: Any) -> InversionResult:
        """Invert one vector (blocking). Budget keywords as in :meth:`invert_batch`."""
        return self.invert_batch(embedding, **budget)[0]

    def invert_batch(
        self, embeddings: object, *, budget: SearchBudget | None = None, **given: Any
    ) -> list[InversionResult]:
        """Invert a batch (blocking). The search is ``budget`` (default: this
        inverter's, :attr:`search`: one pass, no refinement) with the :class:`SearchBudget`
        fields ``given`` (``steps=8, fluency=0.05``; ``None``: not chosen; an unknown
        name is an :class:`InputError`). A field left out is the checkpoint's own (its
        ``search``: the fluent inverter refines differently from the scratch one), else
        the library's default."""
        return asyncio.run(self.ainvert_batch(embeddings, budget=budget, **given))

    async def ainvert_batch(
        self, embeddings: object, *, budget: SearchBudget | None = None, **given: Any
    ) -> list[InversionResult]:
        """The same, for callers inside an event loop."""
        chosen = (budget or self.search).updated(given)
        inputs = self.check_inputs(embeddings)
        feedback = self.feedback_for(inputs)
        targets = self.aligner.map(inputs) if self.aligner is not None else inputs
        return await self._search.run(targets, feedback, chosen)

    def _bank(self) -> PromptBank | None:
        """The checkpoint's prompt bank, loaded on first use (``None``: it has none)."""
        loaded = self._loaded
        if not loaded.bank_loaded:
            loaded.bank = load_bank_for(
                self.model_path, self.info.embedder_name, self.info.embedder_dimension
            )
            loaded.bank_loaded = True
        return loaded.bank

    async def _lexicon(self, embedder: Embedder | None = None, words: int | None = None) -> Lexicon:
        """The checkpoint's lexicon (its first ``words``, the most frequent; all by
        default) with its ``embedder`` embeddings (default the inverter's own; or a
        foreign feedback embedder's), loaded on first use: shipped with the checkpoint,
        else from the cache folder, else embedded and cached there."""
        embedder = embedder or self.embedder
        lexicon = self.info.lexicon or self.text_model.vocabulary_words()
        chosen = lexicon[:words]
        # Keyed by the words' count: "all" and a bound past the end are one entry.
        key = (embedder.name, embedder.dimension, len(chosen))
        lexicons = self._loaded.lexicons
        if key not in lexicons:
            lexicons[key] = await cached_lexicon(
                chosen,
                embedder,
                cache_dir=self.cache_dir,
                shipped=shipped_lexicon_path(self.model_path),
            )
        return lexicons[key]

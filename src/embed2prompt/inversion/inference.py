"""From an embedding back to a prompt: ``EmbeddingToPromptInference``.

One pass decodes the inverter's best guesses (greedy and sampled candidates) and keeps the
one whose own embedding is closest to the target. Refinement then uses the embedder as
feedback, which is where vec2text's gains come from: each step re-embeds the current best
hypotheses, moves the conditioning vector away from each hypothesis's error
(``target + strength * (target - hypothesis)``), decodes new candidates from it, and keeps
the best few by cosine (a sequence beam). Budgets: steps, beam width, embedder calls, time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.checkpoint import load_checkpoint
from embed2prompt.inversion.decoding import sample
from embed2prompt.inversion.tokenizer import decode

DEFAULT_MODEL = Path("models/best_model.pt")


@dataclass(frozen=True)
class InversionResult:
    """The best prompt found, its cosine to the target, and how the search went."""

    prompt: str
    cosine: float
    trace: list[float] = field(default_factory=list)  # best cosine after each step
    embedder_calls: int = 0
    seconds: float = 0.0


def check_embeddings(raw: object, dimension: int) -> npt.NDArray[np.float32]:
    """(n, d) unit rows, or an :class:`InputError` naming the row and the problem."""
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("embeddings must be numbers: a vector or a list of vectors") from None
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
    for index, row in enumerate(array):
        if not np.isfinite(row).all():
            raise InputError(f"embedding {index} contains NaN or infinite values")
        if not np.any(row):
            raise InputError(f"embedding {index} is all zeros; it has no direction to invert")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (array / norms).astype(np.float32)
    return unit


class EmbeddingToPromptInference:
    """Inverts embeddings of the embedder a checkpoint was trained for.

    ``embedder`` defaults to the local all-MiniLM-L6-v2 when the checkpoint was trained
    on it; pass the matching embedder for checkpoints trained on another one.
    """

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        *,
        embedder: Embedder | None = None,
        candidates: int = 8,
        seed: int = 0,
    ) -> None:
        self.model, self.tokenizer, self.info = load_checkpoint(Path(model_path))
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
        self.candidates = candidates
        self.seed = seed

    @property
    def dimension(self) -> int:
        return self.info.embedder_dimension

    def invert(self, embedding: object, **budget: Any) -> InversionResult:
        """Invert one vector (blocking). Budget keywords as in :meth:`invert_batch`."""
        return self.invert_batch(embedding, **budget)[0]

    def invert_batch(
        self,
        embeddings: object,
        *,
        steps: int = 0,
        beam: int = 4,
        strength: float = 0.5,
        max_embedder_calls: float = float("inf"),
        max_seconds: float = float("inf"),
    ) -> list[InversionResult]:
        targets = check_embeddings(embeddings, self.dimension)
        if steps < 0 or beam < 1:
            raise InputError(f"steps must be >= 0 and beam >= 1, got steps={steps}, beam={beam}")
        return asyncio.run(
            self._invert(targets, steps, beam, strength, max_embedder_calls, max_seconds)
        )

    async def ainvert_batch(self, embeddings: object, **budget: float) -> list[InversionResult]:
        """The same, for callers inside an event loop."""
        targets = check_embeddings(embeddings, self.dimension)
        steps = int(budget.pop("steps", 0))
        beam = int(budget.pop("beam", 4))
        return await self._invert(
            targets,
            steps,
            beam,
            budget.pop("strength", 0.5),
            budget.pop("max_embedder_calls", float("inf")),
            budget.pop("max_seconds", float("inf")),
        )

    async def _invert(
        self,
        targets: npt.NDArray[np.float32],
        steps: int,
        beam: int,
        strength: float,
        max_calls: float,
        max_seconds: float,
    ) -> list[InversionResult]:
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        target_tensor = torch.from_numpy(targets)
        # Step 0: greedy and sampled candidates from the target itself.
        pools = self._decode(target_tensor, generator)
        scored, calls = await self._score(pools, targets)
        beams = [sorted(pool, key=lambda pair: -pair[1])[:beam] for pool in scored]
        traces = [[pool[0][1]] for pool in beams]
        for _ in range(steps):
            if calls >= max_calls or time.perf_counter() - started >= max_seconds:
                break
            # Condition on target + strength * (target - hypothesis) for each beam member.
            conditioning, owners = [], []
            for index, pool in enumerate(beams):
                for text, _cosine in pool:
                    conditioning.append(text)
                    owners.append(index)
            hypotheses = await self.embedder.embed(conditioning)
            calls += len(conditioning)
            shifted = targets[owners] + strength * (targets[owners] - hypotheses)
            shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
            new = self._decode(torch.from_numpy(shifted.astype(np.float32)), generator)
            merged: list[list[str]] = [[text for text, _ in pool] for pool in beams]
            for owner, texts in zip(owners, new, strict=True):
                merged[owner].extend(texts)
            rescored, more = await self._score(merged, targets)
            calls += more
            beams = [sorted(pool, key=lambda pair: -pair[1])[:beam] for pool in rescored]
            for trace, pool in zip(traces, beams, strict=True):
                trace.append(pool[0][1])
        seconds = time.perf_counter() - started
        return [
            InversionResult(
                pool[0][0], pool[0][1], trace, calls // len(beams), seconds / len(beams)
            )
            for pool, trace in zip(beams, traces, strict=True)
        ]

    def _decode(self, conditioning: torch.Tensor, generator: torch.Generator) -> list[list[str]]:
        """Greedy plus ``candidates - 1`` sampled texts for each conditioning vector."""
        pools: list[list[str]] = [[] for _ in range(conditioning.shape[0])]
        with torch.no_grad():
            for ids in (
                sample(self.model, conditioning, temperature=0.0),
                *(
                    sample(self.model, conditioning, temperature=0.8, top_k=40, generator=generator)
                    for _ in range(self.candidates - 1)
                ),
            ):
                for pool, row in zip(pools, ids, strict=True):
                    text = decode(self.tokenizer, row)
                    if text and text not in pool:
                        pool.append(text)
        return [pool or ["?"] for pool in pools]

    async def _score(
        self, pools: Sequence[list[str]], targets: npt.NDArray[np.float32]
    ) -> tuple[list[list[tuple[str, float]]], int]:
        """Each candidate with the cosine of its embedding to its target."""
        flat = [text for pool in pools for text in pool]
        vectors = await self.embedder.embed(flat)
        scored, position = [], 0
        for index, pool in enumerate(pools):
            rows = vectors[position : position + len(pool)]
            position += len(pool)
            cosines = rows @ targets[index]
            scored.append([(text, float(c)) for text, c in zip(pool, cosines, strict=True)])
        return scored, len(flat)

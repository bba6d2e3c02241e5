"""What the inverter itself proposes to the search: texts decoded for a vector.

- :meth:`InverterMoves.guesses`: the greedy text and sampled ones, for a target (the
  first pass) or for a target pushed away from a hypothesis's error (re-decoding);
- :meth:`InverterMoves.completions`: a hypothesis's first part kept and the rest
  rewritten for the target, readable moves that no word edit makes;
- :meth:`InverterMoves.fluency`: how likely the inverter finds a text for a target.

Every sampled choice is seeded by its conditioning vector (:mod:`seeding`), so a target
gets the same texts alone or in any batch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from embed2prompt.inversion.decoding import sample
from embed2prompt.inversion.inverters import TextModel
from embed2prompt.inversion.seeding import vector_seed

Vectors = npt.NDArray[np.float32]

_SAMPLING_TEMPERATURE = 0.8  # candidates besides the greedy one: varied, still fluent
_SAMPLING_TOP_K = 40
_SAMPLE_SEED_STRIDE = 7919  # a prime: the candidates of one vector get unrelated seeds


class InverterMoves:
    """Decoding moves of one inverter (``text_model``) with a base ``seed``."""

    def __init__(self, text_model: TextModel, seed: int) -> None:
        self.text_model = text_model
        self.seed = seed

    def guesses(self, conditioning: Vectors, candidates: int) -> list[list[str]]:
        """Greedy plus ``candidates - 1`` sampled texts for each conditioning vector,
        decoded as one batch, distinct and non-empty (``"?"`` when none is)."""
        count = conditioning.shape[0]
        temperatures = torch.full((candidates, count), _SAMPLING_TEMPERATURE)
        temperatures[0] = 0.0  # the first candidate of each vector is the greedy one
        vector_seeds = torch.tensor(
            [vector_seed(vector, self.seed) for vector in conditioning], dtype=torch.int64
        )
        # Row r of the batch is candidate r // count of vector r % count.
        candidate = torch.arange(candidates, dtype=torch.int64).repeat_interleave(count)
        ids = sample(
            self.text_model.decoder,
            torch.from_numpy(np.ascontiguousarray(conditioning)).repeat(candidates, 1),
            temperature=temperatures.flatten(),
            top_k=_SAMPLING_TOP_K,
            row_seeds=vector_seeds.repeat(candidates) + candidate * _SAMPLE_SEED_STRIDE,
        )
        pools: list[list[str]] = [[] for _ in range(count)]
        for index, text in enumerate(self.text_model.decode(ids)):
            pool = pools[index % count]
            if text and text not in pool:
                pool.append(text)
        return [pool or ["?"] for pool in pools]

    def completions(
        self, texts: list[str], conditioning: Vectors, per_text: int
    ) -> list[list[str]]:
        """For each text, up to ``per_text`` greedy completions conditioned on its row of
        ``conditioning``: its first 1/(N+1), ..., N/(N+1) of tokens kept (N =
        ``per_text``), the rest rewritten. A text too short to cut that often gets
        fewer; one of a single token, none (its only cut would keep it whole)."""
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

    def fluency(self, texts: list[str], conditioning: Vectors) -> list[float]:
        """Mean token log-probability of each text given its target, in one batch."""
        return self.text_model.fluency(texts, conditioning)

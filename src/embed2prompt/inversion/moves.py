"""What the inverter itself proposes to the search: texts decoded for a vector.

- :meth:`InverterMoves.guesses`: the greedy text and sampled ones, for a target (the
  first pass) or for a target pushed away from a hypothesis's error (re-decoding);
- :meth:`InverterMoves.token_edits`: one-token changes of a hypothesis that the inverter,
  conditioned on the target, would rather write: readable moves that no word edit makes;
- :meth:`InverterMoves.fluency`: how well a text reads, as the inverter's model judges it.

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
# Tokens tried at each position of a hypothesis besides its own: with the few likeliest
# of each position, the best edits of the whole text are among them.
_ALTERNATIVES_PER_POSITION = 3


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

    def token_edits(
        self, texts: list[str], conditioning: Vectors, per_text: int
    ) -> list[list[str]]:
        """Up to ``per_text`` one-token edits of each text, the ones the inverter finds
        likeliest given the text's row of ``conditioning``: at each position, one of the
        few tokens it would rather write there put in place of the text's token or before
        it, or the text ended there. Chosen by the model that writes the prompts, they
        read as the text did, and they lean towards the target it is conditioned on:
        readable moves that a word edit from the lexicon rarely makes."""
        decoder = self.text_model.decoder
        rows = self.text_model.encode(texts)
        if not rows:
            return []
        log_probs = self.text_model.position_log_probs(rows, conditioning)
        if decoder.banned_ids:
            log_probs[:, :, list(decoder.banned_ids)] = -torch.inf
        # Position j predicts the token at j, and the end-of-text after the last one.
        top = log_probs.topk(_ALTERNATIVES_PER_POSITION + 1, dim=-1)
        edited: list[list[str]] = []
        for index, row in enumerate(rows):
            scored: dict[tuple[int, ...], float] = {}  # edited tokens: their token's score
            values, tokens = top.values[index].tolist(), top.indices[index].tolist()
            for j in range(len(row) + 1):
                for score, token in zip(values[j], tokens[j], strict=True):
                    if j < len(row) and token == row[j]:
                        continue
                    if token == decoder.eos_id:
                        if 0 < j < len(row):
                            scored.setdefault(tuple(row[:j]), score)
                        continue
                    if j < len(row):
                        scored.setdefault((*row[:j], token, *row[j + 1 :]), score)
                    if len(row) < decoder.max_tokens - 1:
                        scored.setdefault((*row[:j], token, *row[j:]), score)
            likeliest = sorted(scored, key=lambda edit: -scored[edit])[:per_text]
            written = self.text_model.decode([list(edit) for edit in likeliest])
            edited.append([t for t in dict.fromkeys(written) if t and t != texts[index]])
        return edited

    def fluency(self, texts: list[str], conditioning: Vectors) -> list[float]:
        """How well each text reads, as the inverter's model judges it
        (:meth:`TextModel.fluency`; ``conditioning``: the texts' targets). One batch."""
        return self.text_model.fluency(self.text_model.encode(texts), conditioning)

"""The two kinds of inverter behind one interface, and loading either from a checkpoint.

- ``"prefix-lm"`` (:mod:`prefix_lm`): an adapter into the frozen, pretrained SmolLM2. It
  writes English, so its prompts read as prompts: the default (``models/best_model.pt``).
- ``"scratch"`` (:mod:`model`): the small decoder trained from scratch on the corpus,
  with its own tokenizer (``models/small_model.pt``): about four times as fast, and quick to
  train for another embedder.

The search (:mod:`inference`) needs five things of either: decoding (:class:`Decoder`),
tokens in and out, how likely a text is given a target, how well a text reads, and words
to try as edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from tokenizers import Tokenizer

from embed2prompt.inversion.checkpoint import CheckpointInfo, load_checkpoint
from embed2prompt.inversion.decoding import Decoder
from embed2prompt.inversion.lexical_search import tokenizer_words
from embed2prompt.inversion.model import Inverter
from embed2prompt.inversion.prefix_checkpoint import KIND as PREFIX_KIND
from embed2prompt.inversion.prefix_checkpoint import (
    checkpoint_kind,
    load_prefix_inverter,
    read_prefix_config,
)
from embed2prompt.inversion.tokenizer import decode


class TextModel(Protocol):
    @property
    def decoder(self) -> Decoder: ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's tokens (no end-of-text), cut to fit the decoder."""

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Texts from written tokens, up to the end-of-text, markers left out."""

    def position_log_probs(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> torch.Tensor:
        """(B, T+1, V): at each position of each row of tokens (T the longest), the
        log-probability of every token given the row's embedding and its tokens before
        that position; the last real position is the end-of-text's."""

    def fluency(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> list[float]:
        """How well each row of tokens reads: a mean log-probability a token, higher
        reading better. ``conditioning`` holds the rows' targets, for a model that knows
        text only through them."""

    def vocabulary_words(self) -> list[str]:
        """Whole words of the vocabulary: edits to try when a checkpoint has no lexicon."""


def mean_log_probs(
    log_probs: torch.Tensor, rows: Sequence[Sequence[int]], eos_id: int
) -> list[float]:
    """Each row's mean log-probability a token, end-of-text included, from its
    :meth:`TextModel.position_log_probs` (``log_probs``)."""
    scores = []
    for index, row in enumerate(rows):
        written = torch.tensor([*row, eos_id])
        chosen = log_probs[index, torch.arange(len(written)), written]
        scores.append(float(chosen.mean()))
    return scores


class ScratchTextModel:
    """The small decoder trained from scratch, with its own BPE tokenizer."""

    def __init__(self, model: Inverter, tokenizer: Tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @property
    def decoder(self) -> Decoder:
        return self.model

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        limit = self.model.config.max_tokens - 1
        return [encoding.ids[:limit] for encoding in self.tokenizer.encode_batch(list(texts))]

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        return [decode(self.tokenizer, row) for row in rows]

    @torch.no_grad()
    def position_log_probs(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> torch.Tensor:
        # Padding sits after each row's end, and the decoder is causal: no row reads it.
        tokens = torch.full(
            (len(rows), max(len(row) for row in rows)), self.model.config.pad_id, dtype=torch.long
        )
        for index, row in enumerate(rows):
            tokens[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        embeddings = torch.from_numpy(np.ascontiguousarray(conditioning))
        log_probs: torch.Tensor = self.model(embeddings, tokens).log_softmax(dim=-1)
        return log_probs

    def fluency(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> list[float]:
        """The decoder's mean log-probability a token of each row given its target: it
        has learnt no English beyond its training texts, so it can only say how readily
        it would write a row for that target."""
        log_probs = self.position_log_probs(rows, conditioning)
        return mean_log_probs(log_probs, rows, self.model.eos_id)

    def vocabulary_words(self) -> list[str]:
        return tokenizer_words(self.tokenizer.get_vocab())


def load_inverter(path: Path) -> tuple[TextModel, CheckpointInfo]:
    """Either kind of inverter from its checkpoint (``NAME.pt`` and ``NAME.json``)."""
    if checkpoint_kind(path) == PREFIX_KIND:
        return load_prefix_inverter(path)
    model, tokenizer, info = load_checkpoint(path)
    return ScratchTextModel(model, tokenizer), info


def checkpoint_info(path: Path) -> CheckpointInfo:
    """What either kind of checkpoint inverts, without loading a language model: for
    checks made before any work starts (``bank add``, the Ray driver)."""
    if checkpoint_kind(path) == PREFIX_KIND:
        return read_prefix_config(path)[1]
    return load_checkpoint(path)[2]

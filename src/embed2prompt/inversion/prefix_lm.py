"""The fluent inverter: a frozen pretrained LM that reads the embedding as a prefix.

An adapter (a 2-layer MLP) turns the target embedding into ``prefix_length`` vectors in
the LM's input-embedding space; the LM reads them as if they were the first tokens of a
document and writes the text that follows (ClipCap's design; GEIA and "lmgist" did the
same for sentence embeddings). Only the adapter trains, so the LM keeps all the English it
knows: whatever it writes reads as English, and training only has to teach it *what* to
write about. An adapter may also hold low-rank updates to the LM's attention (LoRA,
``lora_rank``), trained with it and added in the LM's forward passes; the LM's own weights
never change.

Shapes: B batch, K prefix length, T text tokens, W the LM's width (576), E embedding dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from embed2prompt.inversion.base_lm import BaseLM, compute_dtype
from embed2prompt.inversion.lexical_search import tokenizer_words


@dataclass(frozen=True)
class AdapterConfig:
    embedding_dim: int = 384  # E: the embedder's dimension (all-MiniLM-L6-v2)
    prefix_length: int = 4  # K
    hidden: int = 2048
    lm_width: int = 576  # W: SmolLM2-135M's hidden size
    max_tokens: int = 32  # longest text trained on and written, in the LM's tokens
    # Rank of the low-rank updates (LoRA) to every layer's query and value projections,
    # trained with the adapter; 0 leaves the LM exactly as packaged.
    lora_rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PrefixAdapter(nn.Module):
    """(B, E) embeddings to (B, K, W) vectors the LM reads before the text."""

    def __init__(self, config: AdapterConfig, *, token_scale: float = 1.0) -> None:
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(
            nn.Linear(config.embedding_dim, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.prefix_length * config.lm_width),
        )
        # Start at the size of the LM's own token vectors: a prefix far larger or smaller
        # than any token the LM has seen makes the first steps of training erratic.
        with torch.no_grad():
            probe = F.normalize(torch.randn(256, config.embedding_dim), dim=1)
            last = self.mlp[2]
            assert isinstance(last, nn.Linear)
            last.bias.zero_()
            last.weight.mul_(token_scale / float(self.mlp(probe).std()))

        self.lora: LowRankUpdates | None = None

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        config = self.config
        out: torch.Tensor = self.mlp(embeddings).view(-1, config.prefix_length, config.lm_width)
        return out

    def address(self, model: nn.Module) -> None:
        """Build the low-rank updates for ``model``'s projections (their shapes are the
        LM's) and apply them in its forward passes; nothing when ``lora_rank`` is 0.
        A model that another adapter's LoRA already changes is refused: both updates
        would apply to every pass, each adapter's and the other's."""
        if self.config.lora_rank == 0:
            return
        if getattr(model, _LORA_MARK, False):
            raise ValueError(
                "this language model already carries another adapter's LoRA; "
                "load a fresh one (load_base_lm) for each LoRA adapter"
            )
        setattr(model, _LORA_MARK, True)
        projections = [
            getattr(layer.self_attn, name)
            for layer in model.model.layers  # type: ignore[union-attr]
            for name in LORA_PROJECTIONS
        ]
        self.lora = LowRankUpdates(projections, self.config.lora_rank)
        self.lora.apply_to(projections)


# The projections LoRA updates: rank 8 on these lowered the validation loss 0.13 below
# the adapter alone in 80 steps (BENCHMARKS.md, "Adapter width and LoRA").
LORA_PROJECTIONS = ("q_proj", "v_proj")
_LORA_MARK = "_embed2prompt_lora"  # set on an LM whose projections carry LoRA hooks


class LowRankUpdates(nn.Module):
    """LoRA: a trainable ``up @ down`` added to each frozen projection's output, zero at
    first (``up`` starts at 0), scaled by alpha / rank with alpha = 2 x rank. The updates
    live here, in full precision, not in the LM, whose weights stay as packaged (and in
    bf16 where it computes in bf16); forward hooks add them."""

    SCALE = 2.0

    def __init__(self, projections: Sequence[nn.Linear], rank: int) -> None:
        super().__init__()
        self.down = nn.ParameterList(
            nn.Parameter(torch.randn(rank, p.in_features) / math.sqrt(rank)) for p in projections
        )
        self.up = nn.ParameterList(
            nn.Parameter(torch.zeros(p.out_features, rank)) for p in projections
        )

    def apply_to(self, projections: Sequence[nn.Linear]) -> None:
        for index, projection in enumerate(projections):
            projection.register_forward_hook(self._hook(index))

    def _hook(self, index: int) -> Any:
        down, up = self.down[index], self.up[index]

        def add_update(_: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> Any:
            x = inputs[0].to(down.dtype)
            return output + (self.SCALE * ((x @ down.T) @ up.T)).to(output.dtype)

        return add_update


class PrefixLM:
    """The frozen LM with an adapter: loss for training, decoding and scoring for use."""

    def __init__(self, base: BaseLM, adapter: PrefixAdapter) -> None:
        if adapter.config.lm_width != base.width:
            raise ValueError(
                f"the adapter writes {adapter.config.lm_width}-wide vectors, "
                f"the language model reads {base.width}"
            )
        self.base = base
        self.adapter = adapter
        self.config = adapter.config
        adapter.address(base.model)

    @property
    def device(self) -> torch.device:
        """Where the LM and the adapter compute: the CPU, unless training moved them."""
        return torch.device(self.base.model.device)

    def _prefix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The adapter's K vectors for each embedding, in the dtype the LM computes in."""
        vectors: torch.Tensor = self.adapter(embeddings.to(self.device).float())
        return vectors.to(self.base.model.dtype)

    def to(self, device: str | torch.device) -> PrefixLM:
        """Move the LM, in that device's :func:`compute_dtype`, and the adapter (training on
        a GPU); returns this inverter."""
        device = torch.device(device)
        self.base.model.to(device=device, dtype=compute_dtype(device))
        self.adapter.to(device)
        return self

    # -- tokens -----------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's tokens, cut to leave room for the end-of-text token."""
        ids = self.base.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [row[: self.config.max_tokens - 1] for row in ids]

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Texts up to the first end-of-text, markers left out, spacing normalised."""
        eos = self.base.eos_id
        cut = [list(row)[: list(row).index(eos)] if eos in row else list(row) for row in rows]
        texts = self.base.tokenizer.batch_decode(cut, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]

    def vocabulary_words(self) -> list[str]:
        return tokenizer_words(self.base.tokenizer.get_vocab())

    # -- training and scoring ---------------------------------------------------------

    def _teacher_forced(
        self, embeddings: torch.Tensor, rows: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits (B, T+1, V) after the prefix and each row's tokens, and the
        targets (B, T+1): the tokens, then end-of-text, then -100 (ignored) as padding."""
        eos = self.base.eos_id
        length = max(len(row) for row in rows)
        tokens = torch.full((len(rows), length), eos, dtype=torch.long)
        targets = torch.full((len(rows), length + 1), -100, dtype=torch.long)
        for index, row in enumerate(rows):
            tokens[index, : len(row)] = torch.tensor(row, dtype=torch.long)
            targets[index, : len(row)] = tokens[index, : len(row)]
            targets[index, len(row)] = eos
        tokens, targets = tokens.to(self.device), targets.to(self.device)
        prefix = self._prefix(embeddings)  # (B, K, W)
        text = self.base.token_embeddings()(tokens)  # (B, T, W)
        inputs = torch.cat([prefix, text], dim=1)
        # Causal attention: padding sits after each row's end, so no row ever reads it.
        logits = self.base.model(inputs_embeds=inputs, use_cache=False).logits
        k = self.config.prefix_length
        return logits[:, k - 1 :].float(), targets

    def loss(self, embeddings: torch.Tensor, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        logits, targets = self._teacher_forced(embeddings, rows)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @property
    def decoder(self) -> PrefixLM:
        return self

    @torch.no_grad()
    def position_log_probs(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> torch.Tensor:
        """(B, T+1, V): at each position of each row, the log-probability of every token
        given the row's embedding and its tokens before that position (past a row's end
        the values mean nothing). Rows run in groups of similar length: a batch pads
        every row to its longest, and the search's texts vary from a few tokens to the
        limit."""
        embeddings = torch.from_numpy(np.ascontiguousarray(conditioning))
        longest = max(len(row) for row in rows)
        log_probs: torch.Tensor | None = None
        for group in length_groups([len(row) + self.config.prefix_length for row in rows]):
            logits, _ = self._teacher_forced(embeddings[group], [rows[i] for i in group])
            if log_probs is None:
                log_probs = logits.new_zeros((len(rows), longest + 1, logits.shape[-1]))
            log_probs[group, : logits.shape[1]] = logits.log_softmax(dim=-1)
        assert log_probs is not None  # rows is not empty
        return log_probs

    @torch.no_grad()
    def fluency(
        self, rows: Sequence[Sequence[int]], conditioning: npt.NDArray[np.float32]
    ) -> list[float]:
        """Each row's mean log-probability a token under the LM alone (with the adapter's
        LoRA, if it has any, but no prefix), after the start of a document
        (``conditioning`` is not read): how readily the pretrained LM writes the text at
        all, as a reader would judge it. Given the target, the adapter also
        finds likely the salad that word edits make of a sentence on its topic; the LM
        alone does not (mean -3.7 for "How can I reset my router to factory settings?",
        -5.9 for "How can I factory settings reset my router?"). An empty row: -inf."""
        scores = [-math.inf] * len(rows)
        written = [index for index, row in enumerate(rows) if row]
        for group in length_groups([len(rows[index]) for index in written]):
            members = [written[index] for index in group]
            longest = max(len(rows[index]) for index in members)
            # Padding sits after each row's end, and attention is causal: no row reads it.
            tokens = torch.full((len(members), longest + 1), self.base.eos_id, dtype=torch.long)
            tokens[:, 0] = self.base.document_start_id
            for place, index in enumerate(members):
                tokens[place, 1 : len(rows[index]) + 1] = torch.tensor(rows[index])
            tokens = tokens.to(self.device)
            logits = self.base.model(input_ids=tokens[:, :-1], use_cache=False).logits
            chosen = logits.float().log_softmax(dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
            for place, index in enumerate(members):
                scores[index] = float(chosen[place, : len(rows[index])].mean())
        return scores

    # -- decoding (the Decoder protocol of :mod:`decoding`) ------------------------

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def eos_id(self) -> int:
        return self.base.eos_id

    @property
    def banned_ids(self) -> tuple[int, ...]:
        # Document and chat markers: the LM may write them, a prompt never contains them.
        return tuple(
            int(i) for i in self.base.tokenizer.all_special_ids if int(i) != self.base.eos_id
        )

    @torch.no_grad()
    def begin(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, Any]:
        prefix = self._prefix(embeddings)
        out = self.base.model(inputs_embeds=prefix, use_cache=True)
        return out.logits[:, -1].float(), out.past_key_values

    @torch.no_grad()
    def extend(self, token: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        out = self.base.model(input_ids=token[:, None], past_key_values=cache, use_cache=True)
        return out.logits[:, -1].float(), out.past_key_values

    def keep_rows(self, cache: Any, rows: torch.Tensor) -> Any:
        cache.batch_select_indices(rows.nonzero()[:, 0])
        return cache


def token_scale(base: BaseLM) -> float:
    """The typical size of one of the LM's token vectors (the std of all their entries)."""
    return float(base.token_embeddings().weight.float().std())


# A group may pad its rows to at most this much more than their own lengths: fewer,
# larger groups keep the matrix products efficient, more groups waste less on padding.
_PADDING_ALLOWED = 1.25


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length, shortest first: each group's
    rows padded to its longest hold at most ``_PADDING_ALLOWED`` times their tokens."""
    groups: list[list[int]] = []
    total = 0
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and (len(groups[-1]) + 1) * lengths[index] > _PADDING_ALLOWED * (
            total + lengths[index]
        ):
            groups.append([])
            total = 0
        if not groups:
            groups.append([])
        groups[-1].append(index)
        total += lengths[index]
    return groups

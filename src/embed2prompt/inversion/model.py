"""The inverter: a small GPT-style decoder that writes text conditioned on an embedding.

The target embedding is turned by an MLP into ``prefix_length`` vectors that sit in front
of the text tokens, like a prompt the decoder reads before it writes (the "prefix"
conditioning of vec2text's inverter and of ClipCap). Everything after is a plain causal
transformer: the next token is predicted from the prefix and the tokens so far.

Shapes: B batch, P prefix length, T text tokens, C model width, E embedding dimension.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

KeyValues = tuple[torch.Tensor, torch.Tensor]  # one block's keys and values (B, heads, L, C/h)
Cache = list[KeyValues]  # one per block: what decoding has read so far


@dataclass(frozen=True)
class InverterConfig:
    """Sizes of the inverter. The defaults make a ~6M-parameter model that trains on two
    CPU cores in hours and stays under 15 MB as fp16."""

    embedding_dim: int = 384  # E: the embedder's dimension (all-MiniLM-L6-v2: 384)
    vocab_size: int = 8192  # the BPE tokenizer's vocabulary
    prefix_length: int = 8  # P: vectors the embedding becomes
    max_tokens: int = 40  # T: longest text, in tokens, end-of-text included
    width: int = 256  # C
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then an MLP."""

    def __init__(self, config: InverterConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.norm2 = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, 4 * config.width),
            nn.GELU(),
            nn.Linear(4 * config.width, config.width),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, past: KeyValues | None = None
    ) -> tuple[torch.Tensor, KeyValues]:
        """``x`` (B, L, C) with, when decoding, the keys and values of the positions before
        it; returns the block's output and the keys and values up to ``x``'s last position."""
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # With a cache, ``x`` is the one newest position, which may attend to all before it.
        attended = F.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=past is None,
            dropout_p=self.dropout.p if self.training else 0.0,
        )  # (B, heads, L, C/heads)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, width)))
        out: torch.Tensor = x + self.dropout(self.mlp(self.norm2(x)))
        return out, (k, v)


class Inverter(nn.Module):
    """Embedding in, next-token logits out."""

    def __init__(self, config: InverterConfig) -> None:
        super().__init__()
        self.config = config
        self.prefix = nn.Sequential(  # (B, E) -> (B, P*C)
            nn.Linear(config.embedding_dim, 2 * config.width),
            nn.GELU(),
            nn.Linear(2 * config.width, config.prefix_length * config.width),
        )
        self.tokens = nn.Embedding(config.vocab_size, config.width)
        self.positions = nn.Embedding(config.prefix_length + config.max_tokens, config.width)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # tied: fewer parameters, better small models
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T+1, V) for the text token after the prefix and ``tokens`` (B, T):
        row ``i`` predicts the token that follows ``tokens[:, :i]``."""
        x = self._read(embedding, tokens)  # (B, P+T, C)
        for block in self.blocks:
            x, _ = block(x)
        # The last prefix vector predicts the first text token; each token the next.
        logits: torch.Tensor = self.head(self.norm(x[:, self.config.prefix_length - 1 :]))
        return logits

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def eos_id(self) -> int:
        return self.config.eos_id

    @property
    def banned_ids(self) -> tuple[int, ...]:
        return (self.config.pad_id, self.config.bos_id)

    def keep_rows(self, cache: Cache, rows: torch.Tensor) -> Cache:
        return [(k[rows], v[rows]) for k, v in cache]

    def begin(self, embedding: torch.Tensor) -> tuple[torch.Tensor, Cache]:
        """Start decoding: read the prefix; return the logits (B, V) of the first text
        token and the cache that :meth:`extend` continues from."""
        x = self._read(embedding, torch.zeros((embedding.shape[0], 0), dtype=torch.long))
        return self._through_blocks(x, None)

    def extend(self, token: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        """One decoding step: the logits (B, V) of the token after ``token`` (B,). The
        same as :meth:`forward`'s last row, at the cost of one position, not all."""
        x = self.tokens(token[:, None]) + self.positions.weight[cache[0][0].shape[2]]
        return self._through_blocks(x, cache)

    def _read(self, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The prefix vectors followed by the tokens' vectors, with positions."""
        config = self.config
        prefix = self.prefix(embedding).view(-1, config.prefix_length, config.width)
        x = torch.cat([prefix, self.tokens(tokens)], dim=1)  # (B, P+T, C)
        positioned: torch.Tensor = x + self.positions(torch.arange(x.shape[1], device=x.device))
        return positioned

    def _through_blocks(self, x: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, Cache]:
        updated: Cache = []
        for index, block in enumerate(self.blocks):
            x, key_values = block(x, None if cache is None else cache[index])
            updated.append(key_values)
        logits: torch.Tensor = self.head(self.norm(x[:, -1]))
        return logits, updated

    def loss(self, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``tokens`` (B, T: text, then end-of-text, then padding)."""
        logits = self.forward(embedding, tokens[:, :-1])  # each token from those before it
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            tokens.reshape(-1),
            ignore_index=self.config.pad_id,
        )

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def cosine_schedule(step: int, *, warmup: int, total: int, peak: float) -> float:
    """Learning rate: linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

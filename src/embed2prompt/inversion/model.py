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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape  # (B, P+T, C)
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout.p if self.training else 0.0
        )  # (B, heads, P+T, C/heads)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, width)))
        out: torch.Tensor = x + self.dropout(self.mlp(self.norm2(x)))
        return out


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
        """Logits (B, T, V) for the token after each of ``tokens`` (B, T)."""
        config = self.config
        batch, _length = tokens.shape
        prefix = self.prefix(embedding).view(batch, config.prefix_length, config.width)
        x = torch.cat([prefix, self.tokens(tokens)], dim=1)  # (B, P+T, C)
        x = x + self.positions(torch.arange(x.shape[1], device=x.device))
        for block in self.blocks:
            x = block(x)
        # The position before each text token predicts it: the last prefix vector
        # predicts the first token, and so on.
        logits: torch.Tensor = self.head(self.norm(x[:, config.prefix_length - 1 : -1]))
        return logits

    def loss(self, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``tokens`` (B, T: text, then end-of-text, then padding)."""
        inputs = torch.cat(
            [torch.full_like(tokens[:, :1], self.config.bos_id), tokens[:, :-1]], dim=1
        )
        logits = self.forward(embedding, inputs)
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

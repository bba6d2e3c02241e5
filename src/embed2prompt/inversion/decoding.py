"""Turning the inverter's predictions into text: greedy, sampled and beam decoding."""

from __future__ import annotations

import torch

from embed2prompt.inversion.model import Inverter


@torch.no_grad()
def greedy(model: Inverter, embeddings: torch.Tensor) -> list[list[int]]:
    """The most likely token at each step, for a batch of embeddings (B, E)."""
    return sample(model, embeddings, temperature=0.0)


@torch.no_grad()
def sample(
    model: Inverter,
    embeddings: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Token ids for each embedding, sampled (temperature 0: greedy), until <eos>."""
    config = model.config
    batch = embeddings.shape[0]
    tokens = torch.full((batch, 1), config.bos_id, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    for _ in range(config.max_tokens):
        logits = model(embeddings, tokens)[:, -1]  # (B, V)
        logits[:, config.pad_id] = -torch.inf
        logits[:, config.bos_id] = -torch.inf
        if temperature <= 0:
            chosen = logits.argmax(dim=-1)
        else:
            logits = logits / temperature
            if top_k:
                cutoff = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < cutoff, -torch.inf)
            chosen = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
        chosen = torch.where(finished, torch.full_like(chosen, config.eos_id), chosen)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        finished |= chosen == config.eos_id
        if bool(finished.all()):
            break
    return [row[1:].tolist() for row in tokens]

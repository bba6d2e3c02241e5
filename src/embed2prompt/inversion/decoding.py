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
    temperature: float | torch.Tensor = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Token ids for each embedding (B, E), until <eos>. ``temperature`` is one value or
    one per row (B,); a row at 0 is greedy. Decoding reads one new position per step
    (the model's key/value cache), and rows that have finished leave the batch."""
    config = model.config
    batch = embeddings.shape[0]
    temperatures = torch.as_tensor(temperature, dtype=torch.float32).expand(batch)
    greedy_rows = temperatures <= 0
    written: list[list[int]] = [[] for _ in range(batch)]
    active = torch.arange(batch)  # rows still writing, in the order of the cache's rows
    logits, cache = model.begin(embeddings)
    for step in range(config.max_tokens):
        logits[:, config.pad_id] = -torch.inf
        logits[:, config.bos_id] = -torch.inf
        chosen = _choose(logits, temperatures[active], greedy_rows[active], top_k, generator)
        for row, token in zip(active.tolist(), chosen.tolist(), strict=True):
            written[row].append(token)
        going = chosen != config.eos_id
        if not bool(going.any()) or step == config.max_tokens - 1:
            break
        if not bool(going.all()):
            active, chosen = active[going], chosen[going]
            cache = [(k[going], v[going]) for k, v in cache]
        logits, cache = model.extend(chosen, cache)
    return written


def _choose(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    greedy_rows: torch.Tensor,
    top_k: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The next token of each row: the argmax for greedy rows, else sampled."""
    if bool(greedy_rows.all()):
        return logits.argmax(dim=-1)
    scaled = logits / temperatures.clamp(min=1e-6)[:, None]
    if top_k:
        cutoff = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < cutoff, -torch.inf)
    sampled = torch.multinomial(scaled.softmax(dim=-1), 1, generator=generator)[:, 0]
    return torch.where(greedy_rows, logits.argmax(dim=-1), sampled)

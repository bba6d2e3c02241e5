"""Turning an inverter's predictions into text: greedy and sampled decoding.

Both inverters (the small one trained from scratch, :mod:`model`, and the adapter into a
pretrained LM, :mod:`prefix_lm`) decode the same way: read the embedding, then write
one token at a time from a key/value cache. :class:`Decoder` is what they share.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Decoder(Protocol):
    """A model that writes tokens conditioned on an embedding, one position at a time."""

    @property
    def max_tokens(self) -> int:
        """The longest text it writes, end-of-text included."""

    @property
    def eos_id(self) -> int: ...

    @property
    def banned_ids(self) -> tuple[int, ...]:
        """Tokens never to write (padding, start-of-text, chat markers)."""

    def begin(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Read the embeddings (B, E): the first token's logits (B, V) and a cache."""

    def extend(self, token: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Read one token (B,) more: the next token's logits (B, V) and the cache."""

    def keep_rows(self, cache: Any, rows: torch.Tensor) -> Any:
        """The cache of the rows where ``rows`` (B,) is True only."""


@torch.no_grad()
def greedy(model: Decoder, embeddings: torch.Tensor) -> list[list[int]]:
    """The most likely token at each step, for a batch of embeddings (B, E)."""
    return sample(model, embeddings, temperature=0.0)


@torch.no_grad()
def sample(
    model: Decoder,
    embeddings: torch.Tensor,
    *,
    temperature: float | torch.Tensor = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    row_seeds: torch.Tensor | None = None,
) -> list[list[int]]:
    """Token ids for each embedding (B, E), until <eos>. ``temperature`` is one value or
    one per row (B,); a row at 0 is greedy. Decoding reads one new position per step
    (the model's key/value cache), and rows that have finished leave the batch.

    With ``row_seeds`` (B,) int64, each row samples from its own seed alone (Gumbel-max
    with noise hashed from the seed, the step and the token), so a row writes the same
    text whatever else is in the batch; otherwise rows share ``generator``'s stream."""
    batch = embeddings.shape[0]
    temperatures = torch.as_tensor(temperature, dtype=torch.float32).expand(batch)
    greedy_rows = temperatures <= 0
    written: list[list[int]] = [[] for _ in range(batch)]
    active = torch.arange(batch)  # rows still writing, in the order of the cache's rows
    logits, cache = model.begin(embeddings)
    banned = list(model.banned_ids)
    for step in range(model.max_tokens):
        logits[:, banned] = -torch.inf
        seeds = row_seeds[active] if row_seeds is not None else None
        chosen = _choose(
            logits, temperatures[active], greedy_rows[active], top_k, generator, seeds, step
        )
        for row, token in zip(active.tolist(), chosen.tolist(), strict=True):
            written[row].append(token)
        going = chosen != model.eos_id
        if not bool(going.any()) or step == model.max_tokens - 1:
            break
        if not bool(going.all()):
            active, chosen = active[going], chosen[going]
            cache = model.keep_rows(cache, going)
        logits, cache = model.extend(chosen, cache)
    return written


def _choose(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    greedy_rows: torch.Tensor,
    top_k: int,
    generator: torch.Generator | None,
    row_seeds: torch.Tensor | None = None,
    step: int = 0,
) -> torch.Tensor:
    """The next token of each row: the argmax for greedy rows, else sampled."""
    if bool(greedy_rows.all()):
        return logits.argmax(dim=-1)
    scaled = logits / temperatures.clamp(min=1e-6)[:, None]
    if row_seeds is not None:
        k = min(top_k or scaled.shape[-1], scaled.shape[-1])
        values, tokens = scaled.topk(k, dim=-1)
        noise = _gumbel(row_seeds, step, tokens)
        sampled = tokens.gather(1, (values + noise).argmax(dim=-1, keepdim=True))[:, 0]
        return torch.where(greedy_rows, logits.argmax(dim=-1), sampled)
    if top_k:
        cutoff = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < cutoff, -torch.inf)
    sampled = torch.multinomial(scaled.softmax(dim=-1), 1, generator=generator)[:, 0]
    return torch.where(greedy_rows, logits.argmax(dim=-1), sampled)


# splitmix64's constants as signed 64-bit integers (torch has no unsigned int64 math).
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX_1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX_2 = 0x94D049BB133111EB - (1 << 64)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """A logical right shift of int64 (torch's ``>>`` keeps the sign)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _gumbel(row_seeds: torch.Tensor, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """Gumbel noise for each (row, candidate token), a pure function of the row's seed,
    the step and the token id (splitmix64 of their combination): adding it to the
    logits and taking the argmax samples from their softmax."""
    x = row_seeds[:, None] * _GOLDEN + (step * 1_000_003 + tokens)
    x = (x ^ _shift_right(x, 30)) * _MIX_1
    x = (x ^ _shift_right(x, 27)) * _MIX_2
    x = x ^ _shift_right(x, 31)
    uniform = (_shift_right(x, 11).double() + 0.5) / float(1 << 53)  # in (0, 1)
    return (-torch.log(-torch.log(uniform))).to(torch.float32)

"""What a run's API stages cost: OpenAI's list prices, synchronous and through Batch.

Prices are US dollars per million tokens, from openai.com/api/pricing (2025); the Batch
API charges half of them. A model not listed is priced as unknown (its tokens are still
counted); pass your own table to :func:`estimate_table` for other prices.
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_DISCOUNT = 0.5
# model: (input, output) dollars per million tokens, synchronous.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}


@dataclass(frozen=True, slots=True)
class StageCost:
    """One stage's requests to one model: how many, and their tokens."""

    stage: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int  # at most: each request's max_tokens
    exact: bool  # False: projected from the stages before (an upper bound)

    def price(self, prices: dict[str, tuple[float, float]] = PRICES) -> float | None:
        """Dollars, synchronous; ``None`` for a model without a price."""
        if self.model not in prices:
            return None
        per_input, per_output = prices[self.model]
        return (self.input_tokens * per_input + self.output_tokens * per_output) / 1e6


def estimate_table(costs: list[StageCost], prices: dict[str, tuple[float, float]] = PRICES) -> str:
    """The costs as a table: a line per stage and model, and the total."""
    header = ("stage", "model", "requests", "input tokens", "output tokens", "sync $", "batch $")
    lines: list[tuple[str, ...]] = [header]
    total_sync = total_batch = 0.0
    unknown = False
    for cost in costs:
        price = cost.price(prices)
        unknown |= price is None
        total_sync += price or 0.0
        total_batch += (price or 0.0) * BATCH_DISCOUNT
        mark = "" if cost.exact else " (at most)"
        lines.append(
            (
                cost.stage,
                cost.model,
                f"{cost.requests:,}",
                f"{cost.input_tokens:,}{mark}",
                f"{cost.output_tokens:,}",
                _dollars(price),
                _dollars(None if price is None else price * BATCH_DISCOUNT),
            )
        )
    total = ("total", "", f"{sum(c.requests for c in costs):,}", "", "")
    lines.append((*total, _dollars(total_sync), _dollars(total_batch)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.rjust(w) if i >= 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    text.insert(len(text) - 1, "-" * len(text[0]))
    if unknown:
        text.append("(no list price for some models: their cost is left out of the total)")
    return "\n".join(text)


def _dollars(value: float | None) -> str:
    return "?" if value is None else f"{value:,.2f}"

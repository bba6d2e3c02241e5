"""Counting what a run did: calls, retries, 429s, latencies, tokens, time spent waiting."""

from __future__ import annotations

import math
import random
from contextvars import ContextVar
from dataclasses import asdict, dataclass

# Latency percentiles are exact up to this many items and estimated from a uniform
# reservoir sample beyond it, so a run of millions of items keeps flat memory.
_RESERVOIR_SIZE = 10_000


@dataclass(slots=True)
class CallStats:
    """Counters of API attempts, shared by every call of one run (mutated in place)."""

    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers received
    adapting_retries: int = 0  # retries after 429s the limiter owned: not spent from max_attempts
    tokens_used: int = 0
    retry_wait_s: float = 0.0


# The counters of the work item the current task is doing. The processor sets it for each
# item, so every API call an item makes, through any executor however deeply nested,
# is counted on that item without threading a stats object through every layer.
current_call_stats: ContextVar[CallStats | None] = ContextVar("current_call_stats", default=None)


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """The figures of one run of the processor (the specification's Monitoring section)."""

    total: int
    successful: int
    failed: int
    attempts: int
    retries: int
    rate_limited: int
    adapting_retries: int
    tokens_used: int
    wall_time_s: float
    requests_per_second: float
    mean_latency_s: float
    p50_latency_s: float
    p95_latency_s: float
    limiter_wait_s: float
    retry_wait_s: float
    # The share of its limits the limiter used at the end (below 1 while it has lowered
    # its rate after 429s without limit headers; 1 without a limiter).
    limiter_rate_share: float

    @property
    def success_rate(self) -> float:
        return self.successful / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class LatencyRecorder:
    """Mean exactly, percentiles from a bounded reservoir sample."""

    def __init__(self, *, seed: int = 0) -> None:
        self._count = 0
        self._sum = 0.0
        self._sample: list[float] = []
        self._rng = random.Random(seed)

    def add(self, seconds: float) -> None:
        self._count += 1
        self._sum += seconds
        if len(self._sample) < _RESERVOIR_SIZE:
            self._sample.append(seconds)
        else:
            slot = self._rng.randrange(self._count)
            if slot < _RESERVOIR_SIZE:
                self._sample[slot] = seconds

    @property
    def mean(self) -> float:
        return self._sum / self._count if self._count else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile, ``fraction`` in [0, 1]."""
        if not self._sample:
            return 0.0
        ordered = sorted(self._sample)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1]

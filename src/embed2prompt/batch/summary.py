"""The seed's summary figures, accumulated one output record at a time (flat memory),
over the whole output: the rows of earlier runs that this one resumed included."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from embed2prompt.pipeline.results import Summary


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float | None) -> None:
        if value is None:
            return
        self.total += value
        self.count += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class RunningSummary:
    processed: int = 0
    failed: int = 0
    similarity: _Mean = field(default_factory=_Mean)
    prompt_similarity: _Mean = field(default_factory=_Mean)
    best_similarity: _Mean = field(default_factory=_Mean)
    variant_gain: _Mean = field(default_factory=_Mean)
    processing_time: _Mean = field(default_factory=_Mean)

    def add(self, record: dict[str, Any]) -> None:
        self.processed += 1
        if not record.get("success"):
            self.failed += 1
            return
        similarity = record.get("similarity")
        prompt_similarity = record.get("prompt_similarity")
        self.similarity.add(similarity)
        self.prompt_similarity.add(prompt_similarity)
        self.processing_time.add(record.get("processing_time"))
        original = similarity if similarity is not None else prompt_similarity
        best = record.get("best_variant") or {}
        best_score = best.get("similarity")
        if best_score is None:
            best_score = best.get("prompt_similarity")
        if best_score is not None and original is not None:
            best_overall = max(best_score, original)  # as the pipeline's summary counts it
            self.best_similarity.add(best_overall)
            self.variant_gain.add(best_overall - original)

    def summary(self, wall_s: float) -> Summary:
        similarity = self.similarity
        return Summary(
            total_processed=self.processed,
            successful=self.processed - self.failed,
            failed=self.failed,
            processing_time=wall_s,
            average_similarity=similarity.mean,
            max_similarity=similarity.high if similarity.count else None,
            min_similarity=similarity.low if similarity.count else None,
            average_prompt_similarity=self.prompt_similarity.mean,
            average_best_similarity=self.best_similarity.mean,
            average_variant_gain=self.variant_gain.mean,
        )

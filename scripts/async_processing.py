"""``from scripts.async_processing import ...``: the specification's engine names."""

from embed2prompt.engine import (
    AsyncEmbeddingProcessor,
    OpenAIRateLimiter,
    RateLimitConfig,
    RateLimitTier,
)
from embed2prompt.pipeline import ParallelPromptGenerator

__all__ = [
    "AsyncEmbeddingProcessor",
    "OpenAIRateLimiter",
    "ParallelPromptGenerator",
    "RateLimitConfig",
    "RateLimitTier",
]

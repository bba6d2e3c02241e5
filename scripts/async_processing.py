"""``from scripts.async_processing import ...``: the specification's engine names."""

from embed2prompt.engine import (
    AsyncEmbeddingProcessor,
    OpenAIRateLimiter,
    RateLimitConfig,
    RateLimitTier,
)
from scripts._pending import not_available

ParallelPromptGenerator = not_available(
    "ParallelPromptGenerator", "the prompt-generation pipeline (issue 5)"
)

__all__ = [
    "AsyncEmbeddingProcessor",
    "OpenAIRateLimiter",
    "ParallelPromptGenerator",
    "RateLimitConfig",
    "RateLimitTier",
]

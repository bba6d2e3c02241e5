"""The public names, and the specification's import paths."""

from __future__ import annotations

import embed2prompt


def test_public_names_are_pinned() -> None:
    assert sorted(embed2prompt.__all__) == [
        "ApiError",
        "ApiResponse",
        "AsyncEmbeddingProcessor",
        "BatchRequestError",
        "CallExecutor",
        "ChatCompletion",
        "ConfigurationError",
        "Embed2PromptError",
        "EmbeddingToPromptInference",
        "EmptyGenerationError",
        "InputError",
        "ItemError",
        "ItemResult",
        "ItemTimeoutError",
        "LimiterStatus",
        "LimiterUnavailableError",
        "NotAvailableError",
        "OpenAIClient",
        "OpenAIRateLimiter",
        "ParallelPromptGenerator",
        "PromptGenerationResponse",
        "RateLimitConfig",
        "RateLimitHeaders",
        "RateLimitTier",
        "RepeatedRewriteError",
        "RequestTooLargeError",
        "RetriesExhaustedError",
        "RetryPolicy",
        "RunMetrics",
        "RunReport",
        "Settings",
        "TransientError",
        "UnknownTierError",
        "__version__",
    ]
    for name in embed2prompt.__all__:
        assert hasattr(embed2prompt, name)


def test_every_error_descends_from_one_root() -> None:
    for name in embed2prompt.__all__:
        value = getattr(embed2prompt, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, embed2prompt.Embed2PromptError)


def test_seed_import_paths_work_verbatim() -> None:
    from scripts.async_processing import (
        AsyncEmbeddingProcessor,
        OpenAIRateLimiter,
        ParallelPromptGenerator,
        RateLimitConfig,
        RateLimitTier,
    )
    from scripts.inference import EmbeddingToPromptInference

    assert AsyncEmbeddingProcessor is embed2prompt.AsyncEmbeddingProcessor
    config = RateLimitConfig(
        requests_per_minute=100,
        requests_per_day=1000,
        tokens_per_minute=10000,
        tokens_per_day=100000,
        concurrent_requests=10,
    )
    assert OpenAIRateLimiter(config).config is config
    assert RateLimitTier.TIER_2.config.requests_per_minute == 3_500
    from embed2prompt.inversion.inference import EmbeddingToPromptInference as Real

    assert EmbeddingToPromptInference is Real
    assert ParallelPromptGenerator is embed2prompt.ParallelPromptGenerator

"""embed2prompt: turn embedding vectors back into text prompts, fast and at scale.

The public API is re-exported here; modules are organised by concept:

    engine/       rate limits, retries and the parallel processor every API job runs on
    openai_api/   the client for OpenAI-compatible APIs and offline token counting
    embedders/    text to vectors: the local MiniLM on ONNX Runtime, or an API
    generators/   prompts to text: the local SmolLM2 on llama.cpp, or an API
    inversion/    the inverter model: training, decoding, embedding-feedback refinement
    pipeline/     ParallelPromptGenerator: inversion, quality evaluation and variants
    testing/      a local OpenAI-compatible server for tests, benchmarks and the demo
    settings      the one settings class
    errors        the error tree, rooted in Embed2PromptError
"""

from typing import TYPE_CHECKING

from embed2prompt.engine import (
    AsyncEmbeddingProcessor,
    CallExecutor,
    ItemError,
    ItemResult,
    LimiterStatus,
    OpenAIRateLimiter,
    RateLimitConfig,
    RateLimitHeaders,
    RateLimitTier,
    RetryPolicy,
    RunMetrics,
    RunReport,
)
from embed2prompt.errors import (
    ApiError,
    BatchRequestError,
    ConfigurationError,
    Embed2PromptError,
    EmptyGenerationError,
    InputError,
    ItemTimeoutError,
    LimiterUnavailableError,
    NotAvailableError,
    RepeatedRewriteError,
    RequestTooLargeError,
    RetriesExhaustedError,
    TransientError,
    UnknownTierError,
)
from embed2prompt.settings import Settings

if TYPE_CHECKING:  # the lazily loaded names below, typed for type checkers
    from embed2prompt.inversion.inference import EmbeddingToPromptInference
    from embed2prompt.openai_api.client import ApiResponse, ChatCompletion, OpenAIClient
    from embed2prompt.pipeline import ParallelPromptGenerator, PromptGenerationResponse

__version__ = "0.1.0"

# Loaded on first use: they bring in PyTorch or the openai SDK (seconds to import), which
# the engine and the command line's argument checks do without.
_LAZY = {
    "ApiResponse": "embed2prompt.openai_api.client",
    "ChatCompletion": "embed2prompt.openai_api.client",
    "OpenAIClient": "embed2prompt.openai_api.client",
    "EmbeddingToPromptInference": "embed2prompt.inversion.inference",
    "ParallelPromptGenerator": "embed2prompt.pipeline",
    "PromptGenerationResponse": "embed2prompt.pipeline",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embed2prompt' has no attribute {name!r}")


__all__ = [
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

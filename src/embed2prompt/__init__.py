"""embed2prompt: turn embedding vectors back into text prompts, fast and at scale.

The public API is re-exported here; modules are organised by concept:

    engine/       rate limits, retries and the parallel processor every API job runs on
    openai_api/   the client for OpenAI-compatible APIs and offline token counting
    testing/      a local OpenAI-compatible server for tests, benchmarks and the demo
    settings      the one settings class
    errors        the error tree, rooted in Embed2PromptError
"""

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
    ConfigurationError,
    Embed2PromptError,
    InputError,
    NotAvailableError,
    RequestTooLargeError,
    RetriesExhaustedError,
    UnknownTierError,
)
from embed2prompt.openai_api.client import ApiResponse, ChatCompletion, OpenAIClient
from embed2prompt.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiResponse",
    "AsyncEmbeddingProcessor",
    "CallExecutor",
    "ChatCompletion",
    "ConfigurationError",
    "Embed2PromptError",
    "InputError",
    "ItemError",
    "ItemResult",
    "LimiterStatus",
    "NotAvailableError",
    "OpenAIClient",
    "OpenAIRateLimiter",
    "RateLimitConfig",
    "RateLimitHeaders",
    "RateLimitTier",
    "RequestTooLargeError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "RunMetrics",
    "RunReport",
    "Settings",
    "UnknownTierError",
    "__version__",
]

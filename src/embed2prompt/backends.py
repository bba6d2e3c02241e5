"""Choosing the embedder and generator that the settings name, and building them.

The local backends need no key and no network. The OpenAI backends need
``OPENAI_API_KEY`` and share nothing but the settings: each gets its own limiter, since
OpenAI counts limits per model.
"""

from __future__ import annotations

from embed2prompt.embedders.base import Embedder
from embed2prompt.engine.executor import CallExecutor
from embed2prompt.engine.limiter import OpenAIRateLimiter, RateLimiter
from embed2prompt.errors import ConfigurationError
from embed2prompt.generators.base import Generator
from embed2prompt.openai_api.client import OpenAIClient
from embed2prompt.settings import Settings

LOCAL_EMBEDDING_MODELS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
LOCAL_GENERATOR_MODELS = ("SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")
DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_OPENAI_CHAT_MODEL = "gpt-4o-mini"


def create_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "local":
        _require_local_model("embedding", settings.embedding_model, LOCAL_EMBEDDING_MODELS)
        if settings.embedding_dimensions is not None:
            raise ConfigurationError(
                "embedding_dimensions applies to OpenAI text-embedding-3 models only; "
                "all-MiniLM-L6-v2 always gives 384"
            )
        from embed2prompt.embedders.local import LocalEmbedder

        return LocalEmbedder()
    if settings.embedder == "openai":
        from embed2prompt.embedders.openai import OpenAIEmbedder

        model = settings.embedding_model or DEFAULT_OPENAI_EMBEDDING_MODEL
        return OpenAIEmbedder(
            OpenAIClient(settings),
            _executor(settings, model),
            model=model,
            dimensions=settings.embedding_dimensions,
        )
    raise ConfigurationError(f"unknown embedder {settings.embedder!r}; expected local or openai")


def create_generator(settings: Settings) -> Generator:
    if settings.generator == "local":
        _require_local_model("generator", settings.generator_model, LOCAL_GENERATOR_MODELS)
        from embed2prompt.generators.local import LocalGenerator

        return LocalGenerator()
    if settings.generator == "openai":
        from embed2prompt.generators.openai import OpenAIGenerator

        model = settings.generator_model or DEFAULT_OPENAI_CHAT_MODEL
        return OpenAIGenerator(OpenAIClient(settings), _executor(settings, model), model=model)
    raise ConfigurationError(f"unknown generator {settings.generator!r}; expected local or openai")


def _executor(settings: Settings, model: str) -> CallExecutor:
    """The limits of one model: OpenAI counts them per model. In this process, or shared
    through Redis by every process with the same ``redis_url`` and ``rate_limit_name``."""
    limiter: RateLimiter
    if settings.redis_url is not None:
        from embed2prompt.engine.redis_limiter import RedisRateLimiter

        limiter = RedisRateLimiter(
            settings.rate_limits,
            url=settings.redis_url.get_secret_value(),
            name=f"{settings.rate_limit_name}:{model}",
        )
    else:
        limiter = OpenAIRateLimiter(settings.rate_limits)
    return CallExecutor(
        limiter=limiter,
        retry_policy=settings.retry_policy,
        attempt_timeout_s=None,  # the SDK's own timeout (request_timeout_s) applies
    )


def _require_local_model(kind: str, model: str | None, known: tuple[str, ...]) -> None:
    if model is not None and model not in known:
        raise ConfigurationError(
            f"the local {kind} backend runs {known[0]} only, not {model!r}; "
            f"choose the openai backend for other models"
        )

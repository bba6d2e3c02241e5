"""The pipeline's result, in the seed's JSON shape (``../shared/SEED.md``, API Endpoints).

``model_dump()`` gives exactly the seed's response: ``results`` (one per embedding, in
input order), ``summary`` and ``metadata.performance_metrics``, plus the fields the seed
leaves out but users need (``prompt_similarity``, the generated text, latency percentiles,
retries, rate-limit usage). ``error`` appears only on what failed, as in the seed.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from embed2prompt.engine.processor import ItemError

VariantSource = Literal["refinement", "rewrite"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _ErrorOnlyWhenFailed(_Model):
    """A result whose ``error`` key is present only when there is an error."""

    error: str | None = None

    @model_serializer(mode="wrap")
    def _drop_absent_error(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("error") is None:
            data.pop("error", None)
        return data


class EvaluationResult(_ErrorOnlyWhenFailed):
    """How one prompt did: the seed's ``original_result``.

    ``similarity`` is the cosine between the target and the embedding of what the
    generator wrote from the prompt (``None`` when quality evaluation is off);
    ``prompt_similarity`` is the cosine of the prompt's own embedding to the target.
    On a failure, ``error`` is the line users read and :attr:`error_type` the
    exception's class, for code that tells failures apart by type (a limiter outage
    fails a batch run, not its row); the class is not serialised.
    """

    similarity: float | None
    prompt_similarity: float | None
    success: bool
    processing_time: float
    generated_text: str | None = None
    _error_type: type[BaseException] | None = PrivateAttr(default=None)

    @property
    def error_type(self) -> type[BaseException] | None:
        """The class of the exception behind ``error``; ``None`` when not known."""
        return self._error_type

    def failed_with(self, error: BaseException | ItemError) -> Self:
        """A copy that failed with ``error`` (an exception, or the processor's record
        of one): ``success`` false, ``error`` its line, :attr:`error_type` its class."""
        if isinstance(error, ItemError):
            line, error_type = f"{error.type}: {error.message}", error.exception
        else:
            line, error_type = describe(error), type(error)
        failed = self.model_copy(update={"success": False, "error": line})
        failed._error_type = error_type
        return failed


class VariantResult(EvaluationResult):
    """A refined prompt, evaluated the same way as the original."""

    prompt: str
    source: VariantSource


class PromptResult(_Model):
    """Everything about one input embedding."""

    embedding_index: int
    original_prompt: str | None
    original_result: EvaluationResult
    variants: list[VariantResult]
    best_variant: VariantResult | None
    # The prompt's cosine to the target after the first pass and after each refinement
    # step (empty when the inversion failed): how the search converged.
    cosine_by_step: list[float] = []

    @property
    def best_similarity(self) -> float | None:
        """The better of the original and its best variant (by ``score``)."""
        scores = [score(self.original_result)]
        if self.best_variant is not None:
            scores.append(score(self.best_variant))
        known = [s for s in scores if s is not None]
        return max(known) if known else None


class Summary(_Model):
    """The seed's summary, plus what prompts and variants achieved.

    With quality evaluation the similarities are those of the generated texts; without it
    they are ``None`` and the prompt similarities are the only quality figures.
    """

    total_processed: int
    successful: int
    failed: int
    processing_time: float
    average_similarity: float | None
    max_similarity: float | None
    min_similarity: float | None
    average_prompt_similarity: float | None
    # With variants: the mean over items of the better of original and best variant, and
    # its gain over the originals alone.
    average_best_similarity: float | None = None
    average_variant_gain: float | None = None


class RateLimitUsage(_Model):
    """One API limiter's use during the run."""

    backend: str
    requests_per_minute_limit: float
    requests_used_last_minute: float
    tokens_per_minute_limit: float
    tokens_used_last_minute: float
    time_waiting_s: float
    server_pauses: int


class PerformanceMetrics(_Model):
    requests_per_second: float
    average_processing_time: float
    p50_processing_time: float
    p95_processing_time: float
    generator_calls: int
    embedded_texts: int  # by the inverter's search and the evaluations
    api_attempts: int
    retries: int
    rate_limited: int
    tokens_used: int
    rate_limits: list[RateLimitUsage]


class Metadata(_Model):
    performance_metrics: PerformanceMetrics
    embedder: str
    generator: str | None
    max_concurrent: int
    refinement_steps: int
    # Where prompt_similarity and similarity are measured: "native" (the inverter's
    # embedder), "foreign" (an aligner's embedder, the targets' own space) or "mapped"
    # (the inverter's embedder, against targets mapped by an aligner).
    similarity_space: str = "native"
    aligner: str | None = None  # the aligner the targets went through, if any
    # What the caller should know, e.g. inputs that look like another embedder's vectors.
    warnings: list[str] = []


class PromptGenerationResponse(_Model):
    """What :meth:`ParallelPromptGenerator.generate_prompts_with_evaluation` returns."""

    results: list[PromptResult]
    summary: Summary
    metadata: Metadata | None


def describe(error: BaseException) -> str:
    """An error as one line for a result: its type and message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def score(result: EvaluationResult) -> float | None:
    """What variants are ranked by: the generation's similarity when there is one, else
    the prompt's own; ``None`` for a failed evaluation."""
    if not result.success:
        return None
    return result.similarity if result.similarity is not None else result.prompt_similarity

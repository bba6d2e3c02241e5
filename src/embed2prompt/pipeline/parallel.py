"""ParallelPromptGenerator: the seed's high-level interface, many embeddings to prompts.

For each embedding, in parallel under ``max_concurrent`` and the API limits:

1. invert it (batched with the other items' inversions, with embedding-feedback
   refinement) into a prompt and its ``prompt_similarity``;
2. with ``evaluate_quality``, judge the prompt by what the generator writes from it;
3. with ``generate_variants``, make K variants (refinement runners-up and feedback-guided
   rewrites), judge each the same way and pick the best.

It runs on :class:`AsyncEmbeddingProcessor`: one item's failure or timeout is that item's
``success: false``, never the batch's. Example::

    engine = EmbeddingToPromptInference("models/best_model.pt")
    generator = ParallelPromptGenerator(inference_engine=engine, config=None,
                                        rate_limit_tier=RateLimitTier.TIER_2)
    response = await generator.generate_prompts_with_evaluation(embeddings, max_concurrent=5)
    print(response.model_dump_json(indent=2))
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import numpy.typing as npt

from embed2prompt.backends import create_generator, create_inverter
from embed2prompt.embedders.base import Embedder
from embed2prompt.engine.processor import (
    AsyncEmbeddingProcessor,
    ItemError,
    ItemResult,
    ResultStream,
)
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import ConfigurationError, ItemTimeoutError
from embed2prompt.generators.base import Generator
from embed2prompt.inversion.budget import PIPELINE_SEARCH, SearchBudget
from embed2prompt.inversion.inference import EmbeddingToPromptInference, InversionResult
from embed2prompt.pipeline.inversion_batching import InversionBatcher, InversionsAhead
from embed2prompt.pipeline.quality import CallCounts, QualityEvaluator
from embed2prompt.pipeline.results import (
    EvaluationResult,
    Metadata,
    PerformanceMetrics,
    PromptGenerationResponse,
    PromptResult,
    RateLimitUsage,
    Summary,
    VariantResult,
    score,
)
from embed2prompt.pipeline.variants import best_of, make_variants
from embed2prompt.settings import Settings

DEFAULT_MAX_CONCURRENT = 5  # items in progress at once, as the seed's example runs
SHARED_BATCH = 32  # most targets inverted as one batch (the inverter's efficient size)
_SPACE_SAMPLE = 256  # first-pass cosines kept per run to check the inputs' space


class ParallelPromptGenerator:
    """Turns embeddings into evaluated prompts, in parallel.

    ``config`` is a :class:`Settings` (``None``: the environment's, which default to the
    local models), or a :class:`RateLimitConfig`: the environment's settings with those
    limits for every API call through what the pipeline builds, its generator and
    inverter (the tier is then not used; an ``inference_engine`` passed in keeps its own
    embedder and that embedder's limits); ``rate_limit_tier`` overrides the settings'
    tier. ``generator`` replaces the one the settings name (for tests and custom
    backends). Without ``inference_engine`` the settings' inverter is built
    (:func:`~embed2prompt.backends.create_inverter`: its checkpoint, embedder and aligner).

    Refinement follows :class:`SearchBudget`'s layers: the pipeline's search
    (:data:`PIPELINE_SEARCH`), under the checkpoint's own, under the settings'
    ``refinement_*`` that are set. Quality is judged in the space the targets' cosines
    are measured in: the inverter's embedder, or with an aligner, the foreign embedder
    when it can be called (else the mapped space; the metadata says which).
    """

    def __init__(
        self,
        inference_engine: EmbeddingToPromptInference | None = None,
        config: Settings | RateLimitConfig | None = None,
        rate_limit_tier: RateLimitTier | str | None = None,
        *,
        generator: Generator | None = None,
    ) -> None:
        if isinstance(config, RateLimitConfig):
            settings = Settings(custom_rate_limits=config)
        elif config is None or isinstance(config, Settings):
            settings = config or Settings()
        else:
            raise ConfigurationError(
                "config must be an embed2prompt Settings, a RateLimitConfig or None, "
                f"got {type(config).__name__}"
            )
        if rate_limit_tier is not None:
            settings = settings.model_copy(
                update={"rate_limit_tier": RateLimitTier(rate_limit_tier)}
            )
        self.settings = settings
        self.inference_engine = inference_engine or create_inverter(settings)
        self._generator = generator
        self._owns_generator = generator is None
        # One batcher per search budget (a request may choose its steps), shared by every
        # run of this object: the inversions of concurrent calls (a service's
        # simultaneous requests) share batches too.
        self._batchers: dict[SearchBudget, InversionBatcher] = {}

    @property
    def generator_built(self) -> bool:
        return self._generator is not None

    @property
    def generator(self) -> Generator:
        """The generator of quality evaluations, built on first use."""
        if self._generator is None:
            self._generator = create_generator(self.settings)
        return self._generator

    async def generate_prompts_with_evaluation(
        self,
        embeddings: object,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        *,
        evaluate_quality: bool = True,
        generate_variants: bool = False,
        return_metadata: bool = True,
        num_variants: int | None = None,
        refinement_steps: int | None = None,
    ) -> PromptGenerationResponse:
        """A prompt for each embedding, judged and refined as the options ask;
        ``refinement_steps`` ``None`` means the settings' number.

        Invalid input (wrong dimension, NaN, infinities, zero vectors, an empty list)
        raises :class:`InputError` naming the index before any work starts.
        """
        targets = self.inference_engine.check_inputs(embeddings)
        budget = self.search_budget(refinement_steps)
        options = (max_concurrent, evaluate_quality, generate_variants, num_variants, budget)
        async with self._running(targets, *options, ordered=True) as (stream, run):
            results = [_result_or_failure(item) async for item in stream]
            metrics = stream.metrics
        counts, evaluator = run.counts, run.evaluator
        inverter = self.inference_engine
        metadata = None
        if return_metadata:
            metadata = Metadata(
                performance_metrics=PerformanceMetrics(
                    requests_per_second=metrics.requests_per_second,
                    average_processing_time=metrics.mean_latency_s,
                    p50_processing_time=metrics.p50_latency_s,
                    p95_processing_time=metrics.p95_latency_s,
                    generator_calls=counts.generator,
                    embedded_texts=counts.embedded_texts,
                    api_attempts=metrics.attempts,
                    retries=metrics.retries,
                    rate_limited=metrics.rate_limited,
                    tokens_used=metrics.tokens_used,
                    rate_limits=await self._rate_limit_usage(evaluator),
                ),
                embedder=inverter.embedder.name,
                generator=self.generator.name if evaluator is not None else None,
                max_concurrent=max_concurrent,
                refinement_steps=budget.steps,
                similarity_space=inverter.space,
                aligner=inverter.aligner.describe() if inverter.aligner is not None else None,
                warnings=run.warnings(inverter),
            )
        return PromptGenerationResponse(
            results=results,
            summary=_summarise(results, metrics.wall_time_s, generate_variants),
            metadata=metadata,
        )

    async def stream_prompts(
        self,
        embeddings: object,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        *,
        evaluate_quality: bool = True,
        generate_variants: bool = False,
        num_variants: int | None = None,
        stop: asyncio.Event | None = None,
        refinement_steps: int | None = None,
    ) -> AsyncIterator[PromptResult]:
        """The same work, each item's result as soon as it is done (in any order; its
        ``embedding_index`` says which), for callers that store results as they come.
        Once ``stop`` is set no new item starts, and the stream ends when those in
        progress have been yielded (a Ctrl-C that loses no finished work)."""
        targets = self.inference_engine.check_inputs(embeddings)
        budget = self.search_budget(refinement_steps)
        options = (max_concurrent, evaluate_quality, generate_variants, num_variants, budget)
        running = self._running(targets, *options, ordered=False, stop=stop)
        async with running as (stream, _):
            async for item in stream:
                yield _result_or_failure(item)

    @asynccontextmanager
    async def _running(
        self,
        targets: npt.NDArray[np.float32],
        max_concurrent: int,
        evaluate_quality: bool,
        generate_variants: bool,
        num_variants: int | None,
        budget: SearchBudget,
        *,
        ordered: bool,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[tuple[ResultStream[int, PromptResult], _Run]]:
        """The run's processor stream over ``targets`` (checked inputs), and what its
        items share."""
        variants = self.settings.num_variants if num_variants is None else num_variants
        if isinstance(variants, bool) or not isinstance(variants, int) or variants < 1:
            raise ConfigurationError(f"num_variants must be a positive integer, got {variants!r}")
        counts = CallCounts()
        # Judged where the search measures: the targets' own space, or the mapped one.
        judged = self.inference_engine.feedback_for(targets)
        evaluator = (
            QualityEvaluator(self.generator, judged.embedder, self.settings, counts)
            if evaluate_quality
            else None
        )
        processor = AsyncEmbeddingProcessor(max_concurrent=max_concurrent)
        # One at a time means one at a time; otherwise invert the next items while the
        # current ones wait on the generator.
        lookahead = max_concurrent if max_concurrent > 1 else 0
        inversions = InversionsAhead(self._batcher(budget), targets, lookahead)
        run = _Run(inversions, counts, evaluator, variants if generate_variants else 0)
        timeout = self.settings.item_timeout_s

        async def process(index: int) -> PromptResult:
            try:
                async with asyncio.timeout(timeout):
                    return await self._process(index, judged.targets[index], run)
            except TimeoutError:
                raise ItemTimeoutError(
                    f"embedding {index} took longer than {timeout:g} s (item_timeout_s)"
                ) from None

        stream = processor.stream(process, range(len(targets)), ordered=ordered, stop=stop)
        try:
            async with stream:
                yield stream, run
        finally:
            await inversions.aclose()

    async def _process(
        self, index: int, target: npt.NDArray[np.float32], run: _Run
    ) -> PromptResult:
        started = time.perf_counter()
        inversion = await run.inversions.result(index)
        run.counts.embedded_texts += inversion.embedder_calls
        run.note_first_pass(inversion)
        original = EvaluationResult(
            similarity=None,
            prompt_similarity=inversion.cosine,
            success=True,
            processing_time=0.0,
        )
        if run.evaluator is not None:
            try:
                evaluation = await run.evaluator.evaluate(inversion.prompt, target)
                original = original.model_copy(
                    update={
                        "similarity": evaluation.similarity,
                        "generated_text": evaluation.generated_text,
                    }
                )
            except Exception as error:  # the item fails; its prompt is still reported
                original = original.failed_with(error)
        original = original.model_copy(update={"processing_time": time.perf_counter() - started})
        variants: list[VariantResult] = []
        if run.variants and original.success:
            variants = await make_variants(run.variants, original, inversion, target, run.evaluator)
        return PromptResult(
            embedding_index=index,
            original_prompt=inversion.prompt,
            original_result=original,
            variants=variants,
            best_variant=best_of(variants),
            cosine_by_step=inversion.trace,
        )

    def search_budget(self, refinement_steps: int | None = None) -> SearchBudget:
        """The search of this pipeline's inversions: the pipeline's defaults, under the
        checkpoint's own search, under the settings' choices, under ``refinement_steps``
        (``None``: the settings' number; a bad one is the budget's :class:`InputError`)."""
        return pipeline_search(self.inference_engine, self.settings, refinement_steps)

    def _batcher(self, budget: SearchBudget) -> InversionBatcher:
        if budget not in self._batchers:
            self._batchers[budget] = InversionBatcher(
                self.inference_engine, budget, max_batch=SHARED_BATCH
            )
        return self._batchers[budget]

    async def _rate_limit_usage(self, evaluator: QualityEvaluator | None) -> list[RateLimitUsage]:
        """The limiters of the API backends used in this run (none for local models)."""
        backends: list[Embedder | Generator] = [self.inference_engine.embedder]
        if self.inference_engine.feedback is not None:
            backends.append(self.inference_engine.feedback)
        if evaluator is not None:
            backends.append(evaluator.generator)
        usage = []
        for backend in backends:
            executor = getattr(backend, "executor", None)
            limiter = getattr(executor, "limiter", None)
            if limiter is None:
                continue
            # astatus: a shared limiter's figures are in Redis (every process's use).
            status = await limiter.astatus()
            usage.append(
                RateLimitUsage(
                    backend=backend.name,
                    requests_per_minute_limit=status.requests_per_minute.limit,
                    requests_used_last_minute=status.requests_per_minute.used_last_window,
                    tokens_per_minute_limit=status.tokens_per_minute.limit,
                    tokens_used_last_minute=status.tokens_per_minute.used_last_window,
                    time_waiting_s=status.wait_time_s,
                    server_pauses=status.server_pauses,
                )
            )
        return usage

    async def aclose(self) -> None:
        """Release the generator this object built (not one passed in)."""
        for batcher in self._batchers.values():
            await batcher.aclose()
        if self._owns_generator and self._generator is not None:
            generator, self._generator = self._generator, None
            await generator.aclose()

    async def __aenter__(self) -> ParallelPromptGenerator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def pipeline_search(
    inverter: EmbeddingToPromptInference, settings: Settings, steps: int | None = None
) -> SearchBudget:
    """The pipeline's search with ``inverter``, wherever the pipeline runs (here, or as
    a Batch API run): the pipeline's defaults, under the checkpoint's own search, under
    the settings' choices, under ``steps`` (``None``: the settings' number)."""
    chosen = {"steps": steps}
    return inverter.search_budget(settings.search_choices, chosen, purpose=PIPELINE_SEARCH)


@dataclass(slots=True)
class _Run:
    """What every item of one run shares."""

    inversions: InversionsAhead
    counts: CallCounts
    evaluator: QualityEvaluator | None  # None: quality evaluation is off
    variants: int  # variants per item; 0 when they were not asked for
    # The first pass's best cosines of the first items: whether the inputs look like
    # the inverter's embedder's vectors (space_check).
    first_pass: list[float] = field(default_factory=list)

    def note_first_pass(self, inversion: InversionResult) -> None:
        if len(self.first_pass) < _SPACE_SAMPLE and inversion.trace:
            self.first_pass.append(inversion.trace[0])

    def warnings(self, inverter: EmbeddingToPromptInference) -> list[str]:
        warning = inverter.space_warning(self.first_pass)
        return [warning] if warning is not None else []


def _result_or_failure(item: ItemResult[PromptResult]) -> PromptResult:
    """The item's result, or a failed one carrying its error (inversion failed, timeout)."""
    if item.value is not None:
        return item.value
    failed = EvaluationResult(
        similarity=None, prompt_similarity=None, success=False, processing_time=item.latency_s
    )
    error = item.error or ItemError("Exception", "unknown error")
    return PromptResult(
        embedding_index=item.index,
        original_prompt=None,
        original_result=failed.failed_with(error),
        variants=[],
        best_variant=None,
    )


def _summarise(results: list[PromptResult], wall_s: float, with_variants: bool) -> Summary:
    succeeded = [result for result in results if result.original_result.success]
    similarities = [
        r.original_result.similarity for r in succeeded if r.original_result.similarity is not None
    ]
    prompt_similarities = [
        r.original_result.prompt_similarity
        for r in succeeded
        if r.original_result.prompt_similarity is not None
    ]
    best_scores: list[float] = []
    gains: list[float] = []
    if with_variants:
        for result in succeeded:
            best = result.best_similarity
            original = score(result.original_result)
            if best is not None and original is not None:
                best_scores.append(best)
                gains.append(best - original)
    return Summary(
        total_processed=len(results),
        successful=len(succeeded),
        failed=len(results) - len(succeeded),
        processing_time=wall_s,
        average_similarity=_mean(similarities),
        max_similarity=max(similarities) if similarities else None,
        min_similarity=min(similarities) if similarities else None,
        average_prompt_similarity=_mean(prompt_similarities),
        average_best_similarity=_mean(best_scores),
        average_variant_gain=_mean(gains),
    )


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None

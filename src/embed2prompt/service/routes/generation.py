"""The seed's endpoint, ``/generate_prompts_parallel``, and the metrics it feeds."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from embed2prompt.errors import InputError
from embed2prompt.pipeline import PromptGenerationResponse
from embed2prompt.service.dependencies import MetricsDep, ModelsDep, SettingsDep
from embed2prompt.service.errors import error_responses
from embed2prompt.service.schemas import GeneratePromptsRequest
from embed2prompt.service.vectors import check_vectors

router = APIRouter()


@router.post(
    "/generate_prompts_parallel",
    response_model=PromptGenerationResponse,
    responses=error_responses(400, 413, 422, 503),
)
async def generate_prompts_parallel(
    body: GeneratePromptsRequest, settings: SettingsDep, models: ModelsDep, metrics: MetricsDep
) -> JSONResponse:
    """The seed's endpoint: a prompt for each embedding, evaluated in parallel.

    At most ``max_embeddings_per_request`` embeddings (256 by default), each of the
    loaded model's dimension (``/health`` says which), or of the named ``aligner``'s
    embedder. ``metadata.warnings`` says when the vectors look like another embedder's."""
    limit = settings.max_embeddings_per_request
    if len(body.embeddings) > limit:
        raise InputError(
            f"{len(body.embeddings)} embeddings in one request; at most {limit} "
            "(max_embeddings_per_request; use the jobs API for more)"
        )
    inverter = models.inverter_for(body.aligner)  # an unknown aligner: a 422 naming those there are
    # Before any work, as a 422; with an aligner, the error says which expects what.
    check_vectors(body.embeddings, inverter.dimension, expected=inverter.expects)
    pipeline = models.pipeline(body.rate_limit_tier, body.aligner)
    response = await pipeline.generate_prompts_with_evaluation(
        body.embeddings,
        max_concurrent=body.max_concurrent,
        evaluate_quality=body.evaluate_quality,
        generate_variants=body.generate_variants,
        return_metadata=True,  # the metrics need it; dropped below when not asked for
        refinement_steps=body.refinement_steps,
    )
    metrics.record_run(response)
    if not body.return_metadata:
        response = response.model_copy(update={"metadata": None})
    return JSONResponse(content=response.model_dump(mode="json"))


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format: requests, latencies, items, API calls, limiter waits."""
    return metrics.exposition()

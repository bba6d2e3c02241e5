"""``create_app()``: the seed's REST interface over the pipeline.

The app loads the inverter (and with it the embedder) once at start-up, and builds one
:class:`ParallelPromptGenerator` per rate-limit tier on first use, so requests of one
tier share that tier's limiter. A local generator is one model shared by all tiers.
Bad input is a 422 naming the index and the problem, never a 500; every 4xx has the one
shape of :mod:`embed2prompt.service.errors`. The API key is checked, and the body's size
capped, below FastAPI (:mod:`embed2prompt.service.security`), before any body is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from embed2prompt import __version__
from embed2prompt.errors import InputError
from embed2prompt.generators.base import Generator
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.pipeline import ParallelPromptGenerator, PromptGenerationResponse
from embed2prompt.service.errors import error_responses, install_error_handlers
from embed2prompt.service.health import backends, health_report
from embed2prompt.service.job_store import JobStore
from embed2prompt.service.jobs import JobRunner
from embed2prompt.service.metrics import ServiceMetrics
from embed2prompt.service.openapi import document_security
from embed2prompt.service.schemas import GeneratePromptsRequest, JobRequest, PipelineOptions
from embed2prompt.service.security import ApiKeyGuard, BodySizeLimit
from embed2prompt.service.uploads import (
    OPENAPI_REQUEST_BODY,
    RequestBody,
    read_vectors,
    upload_encoding,
)
from embed2prompt.service.vectors import check_vectors
from embed2prompt.settings import Settings


@dataclass
class ServiceModels:
    """What the service holds between requests."""

    settings: Settings
    inverter: EmbeddingToPromptInference | None = None
    pipelines: dict[str, ParallelPromptGenerator] = field(default_factory=dict)
    shared_generator: Generator | None = None

    def load(self) -> None:
        self.inverter = EmbeddingToPromptInference(
            self.settings.model_path, neighbours=self.settings.retrieval_neighbours
        )

    def pipeline(self, tier: str) -> ParallelPromptGenerator:
        if self.inverter is None:
            raise RuntimeError("the service's models are not loaded")
        if tier not in self.pipelines:
            generator = None
            if self.settings.generator == "local":  # one model in memory, whatever the tier
                if self.shared_generator is None:
                    from embed2prompt.backends import create_generator

                    self.shared_generator = create_generator(self.settings)
                generator = self.shared_generator
            self.pipelines[tier] = ParallelPromptGenerator(
                self.inverter, self.settings, tier, generator=generator
            )
        return self.pipelines[tier]

    async def aclose(self) -> None:
        for pipeline in self.pipelines.values():
            await pipeline.aclose()
        if self.shared_generator is not None:
            await self.shared_generator.aclose()
        if self.inverter is not None:
            await self.inverter.embedder.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    models = ServiceModels(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if models.inverter is None:  # serve() loads first, so that errors come out clean
            models.load()
        store = JobStore(settings.jobs_database)
        runner = JobRunner(store, models.pipeline, metrics.record_items)
        app.state.jobs = runner
        runner.resume()
        yield
        await runner.shutdown()  # jobs stop where they are and resume on the next start
        store.close()
        await models.aclose()

    app = FastAPI(
        title="embed2prompt",
        version=__version__,
        summary="Turn embedding vectors back into text prompts, judged by an LLM.",
        lifespan=lifespan,
    )
    app.state.models = models
    metrics = ServiceMetrics()
    install_error_handlers(app)
    # Added innermost first: metrics (outermost, so that it counts the guards' 401s and
    # 413s too), then the key, then the size cap, then the routes.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        upload_paths=frozenset({"/jobs/upload"}),
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Health for load balancers, and the documentation, so that people can read what
    # the API is (it holds no data); everything else needs the key when one is set.
    documentation = (
        app.openapi_url,
        app.docs_url,
        app.redoc_url,
        app.swagger_ui_oauth2_redirect_url,
    )
    open_paths = frozenset(["/health", *(path for path in documentation if path is not None)])
    key = settings.api_key.get_secret_value().encode() if settings.api_key else None
    app.add_middleware(ApiKeyGuard, key=key, open_paths=open_paths)
    app.middleware("http")(metrics.middleware)
    document_security(app, protected=key is not None, open_paths=open_paths)

    def generator_loaded() -> bool:
        return models.shared_generator is not None or any(
            p.generator_built for p in models.pipelines.values()
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what is loaded; open without the API key. Answered from memory:
        no call upstream, no URL or key."""
        return health_report(settings, models.inverter, generator_loaded())

    @app.get(
        "/ready",
        responses={
            503: {
                "description": "Not ready: the models are loading or an API "
                "backend does not answer (the same body)"
            }
        },
    )
    async def ready() -> JSONResponse:
        """Readiness: the models loaded and each API backend answering a probe
        (``GET {base_url}/models``, without user, password or query in the answer)."""
        reports = await backends(settings)
        is_ready = models.inverter is not None and all(r["reachable"] for r in reports.values())
        body = {**health_report(settings, models.inverter, generator_loaded()), "backends": reports}
        body["status"] = "ready" if is_ready else "not ready"
        return JSONResponse(status_code=200 if is_ready else 503, content=body)

    @app.post(
        "/generate_prompts_parallel",
        response_model=PromptGenerationResponse,
        responses=error_responses(400, 413, 422, 503),
    )
    async def generate_prompts_parallel(body: GeneratePromptsRequest) -> JSONResponse:
        """The seed's endpoint: a prompt for each embedding, evaluated in parallel.

        At most ``max_embeddings_per_request`` embeddings (256 by default), each of the
        loaded model's dimension (``/health`` says which)."""
        limit = settings.max_embeddings_per_request
        if len(body.embeddings) > limit:
            raise InputError(
                f"{len(body.embeddings)} embeddings in one request; at most {limit} "
                "(max_embeddings_per_request; use the jobs API for more)"
            )
        check_vectors(body.embeddings, loaded().dimension)  # before any work, as a 422
        response = await models.pipeline(body.rate_limit_tier).generate_prompts_with_evaluation(
            body.embeddings,
            max_concurrent=body.max_concurrent,
            evaluate_quality=body.evaluate_quality,
            generate_variants=body.generate_variants,
            return_metadata=True,  # the metrics need it; dropped below when not asked for
        )
        metrics.record_run(response)
        if not body.return_metadata:
            response = response.model_copy(update={"metadata": None})
        return JSONResponse(content=response.model_dump(mode="json"))

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latencies, items, API calls, limiter waits."""
        return metrics.exposition()

    def loaded() -> EmbeddingToPromptInference:
        if models.inverter is None:
            raise RuntimeError("the service's models are not loaded")
        return models.inverter

    def jobs(request: Request) -> JobRunner:
        runner: JobRunner = request.app.state.jobs
        return runner

    def job_status(runner: JobRunner, job_id: str) -> dict[str, Any]:
        status = runner.store.status(job_id)
        if status is None:
            shown = repr(job_id) if len(job_id) <= 64 else "with that id"  # bounded echo
            raise HTTPException(status_code=404, detail=f"no job {shown}")
        return status.as_dict()

    @app.post("/jobs", status_code=202, responses=error_responses(400, 413, 422, 503))
    async def create_job(body: JobRequest, request: Request) -> dict[str, Any]:
        """A batch too large for one request: stored, run in the background, resumable.

        At most ``max_embeddings_per_job`` embeddings, within ``max_request_bytes``."""
        limit = settings.max_embeddings_per_job
        if len(body.embeddings) > limit:
            raise InputError(
                f"{len(body.embeddings)} embeddings in one job; at most {limit} "
                "(max_embeddings_per_job)"
            )
        vectors = check_vectors(body.embeddings, loaded().dimension)
        runner = jobs(request)
        options = body.model_dump(exclude={"embeddings"})
        job_id = runner.store.create(vectors, options)
        runner.start(job_id)
        return job_status(runner, job_id)

    @app.post(
        "/jobs/upload",
        status_code=202,
        openapi_extra=OPENAPI_REQUEST_BODY,
        responses=error_responses(413, 415, 422, 503),
    )
    async def upload_job(
        request: Request, options: Annotated[PipelineOptions, Query()]
    ) -> dict[str, Any]:
        """A job of up to ``max_embeddings_per_job`` embeddings streamed in the body as
        JSON lines (``application/x-ndjson``: an array of numbers, or an object with an
        ``embedding`` field, a line) or as little-endian float32 rows
        (``application/octet-stream``); the options in the query string. Stored as it
        arrives; the job starts once the upload is complete."""
        encoding = upload_encoding(request.headers.get("content-type"))
        body = RequestBody(request.receive)
        if encoding is None:
            await body.drain()
            raise HTTPException(
                status_code=415,
                detail="send the embeddings as application/x-ndjson (one JSON array a line) "
                "or application/octet-stream (little-endian float32 rows)",
            )
        dimension = loaded().dimension
        runner = jobs(request)
        job_id = runner.store.begin_upload(options.model_dump())
        total = 0
        try:
            rows = read_vectors(body.chunks(), encoding, dimension, settings.max_embeddings_per_job)
            async for vectors in rows:
                runner.store.append_inputs(job_id, total, vectors)
                total += len(vectors)
        except BaseException as error:
            runner.store.discard(job_id)
            if isinstance(error, Exception) and not body.finished:
                await body.drain()  # then the client, still sending, reads the error
            raise
        runner.store.finish_upload(job_id, total)
        runner.start(job_id)
        return job_status(runner, job_id)

    @app.get("/jobs/{job_id}", responses=error_responses(404, 422))
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        """State, progress, counts and the latest errors."""
        return job_status(jobs(request), job_id)

    @app.get("/jobs/{job_id}/results", response_model=None, responses=error_responses(404, 422))
    async def get_job_results(
        job_id: str,
        request: Request,
        offset: int = Query(default=0, ge=0, le=2**62),
        limit: int = Query(default=100, ge=1, le=1000),
        format: Literal["json", "jsonl"] = Query(default="json"),
    ) -> dict[str, Any] | StreamingResponse:
        """Finished items in index order: a page (``json``) or all of them streamed as
        JSON lines (``jsonl``, from ``offset``)."""
        runner = jobs(request)
        job_status(runner, job_id)  # 404 for an unknown job
        if format == "jsonl":

            def lines() -> Iterator[bytes]:
                position = offset
                while page := runner.store.results(job_id, position, 500):
                    position += len(page)
                    yield b"".join(json.dumps(row).encode() + b"\n" for row in page)

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        page = runner.store.results(job_id, offset, limit)
        return {
            "results": page,
            "offset": offset,
            "next_offset": offset + len(page) if len(page) == limit else None,
        }

    @app.delete("/jobs/{job_id}", responses=error_responses(404, 422))
    async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
        """Cancel a job; the results stored so far stay readable."""
        runner = jobs(request)
        status = job_status(runner, job_id)
        if status["state"] in ("queued", "running"):
            await runner.cancel(job_id)
        return job_status(runner, job_id)

    return app

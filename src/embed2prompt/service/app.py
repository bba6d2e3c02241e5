"""``create_app()``: the seed's REST interface over the pipeline.

The app loads the inverter (and with it the embedder) once at start-up, and builds one
:class:`ParallelPromptGenerator` per rate-limit tier on first use
(:class:`~embed2prompt.service.models.ServiceModels`). The routes live in
:mod:`embed2prompt.service.routes`, one router per resource. Bad input is a 422 naming
the index and the problem, never a 500; every error has the one shape of
:mod:`embed2prompt.service.errors`. The API key is checked, and the body's size capped,
below FastAPI (:mod:`embed2prompt.service.security`), before any body is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from embed2prompt import __version__
from embed2prompt.service.errors import install_error_handlers
from embed2prompt.service.job_store import JobStore
from embed2prompt.service.jobs import JobRunner
from embed2prompt.service.metrics import ServiceMetrics
from embed2prompt.service.models import ServiceModels
from embed2prompt.service.openapi import complete_schema
from embed2prompt.service.routes import embeddings, generation, health, job_reports, jobs, page
from embed2prompt.service.security import ApiKeyGuard, BodySizeLimit
from embed2prompt.settings import Settings

__all__ = ["ServiceModels", "create_app"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    models: ServiceModels = app.state.models
    metrics: ServiceMetrics = app.state.metrics
    if models.inverter is None:  # serve() loads first, so that errors come out clean
        models.load()
    store = await asyncio.to_thread(JobStore, settings.jobs_database)
    runner = JobRunner(store, models.pipeline, metrics.record_items)
    app.state.jobs = runner
    await runner.resume()
    yield
    await runner.shutdown()  # jobs stop where they are and resume on the next start
    await asyncio.to_thread(store.close)
    await models.aclose()


def _install_guards(app: FastAPI, settings: Settings, metrics: ServiceMetrics) -> None:
    # Added innermost first: metrics (outermost, so that it counts the guards' 401s and
    # 413s too), then the key, then the size cap, then the routes.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        upload_paths=frozenset({"/jobs/upload"}),
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Health for load balancers, the documentation, so that people can read what the
    # API is, and the web page, which asks for the key and calls the API with it (none
    # of them holds data); everything else needs the key when one is set.
    documentation = (
        app.openapi_url,
        app.docs_url,
        app.redoc_url,
        app.swagger_ui_oauth2_redirect_url,
    )
    open_paths = frozenset(
        ["/health", *(path for path in documentation if path is not None), *page.PAGE_PATHS]
    )
    key = settings.api_key.get_secret_value().encode() if settings.api_key else None
    app.add_middleware(ApiKeyGuard, key=key, open_paths=open_paths)
    app.middleware("http")(metrics.middleware)
    complete_schema(app, protected=key is not None, open_paths=open_paths)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="embed2prompt",
        version=__version__,
        summary="Turn embedding vectors back into text prompts, judged by an LLM.",
        lifespan=_lifespan,
    )
    # What the routes use (service.dependencies); app.state.jobs is set by the lifespan.
    app.state.settings = settings
    app.state.models = ServiceModels(settings)
    app.state.metrics = metrics = ServiceMetrics()
    install_error_handlers(app)
    _install_guards(app, settings, metrics)
    routers = (health, generation, embeddings, jobs, job_reports, page)
    for router in (module.router for module in routers):
        app.include_router(router)
    return app

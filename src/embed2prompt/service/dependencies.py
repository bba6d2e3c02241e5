"""What a route needs, as ``Annotated`` dependencies: all of it lives on ``app.state``.

``create_app`` puts the settings, the models, the metrics and (while the app runs) the job
runner there; a route names what it uses, e.g. ``settings: SettingsDep``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from embed2prompt.service.jobs import JobRunner
from embed2prompt.service.metrics import ServiceMetrics
from embed2prompt.service.models import ServiceModels
from embed2prompt.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _models(request: Request) -> ServiceModels:
    models: ServiceModels = request.app.state.models
    return models


def _metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def job_runner(request: Request) -> JobRunner:
    """The running app's job runner. Called in a route's body, not as a dependency: it
    exists only while the app runs (its lifespan), and a request that fails validation
    must be a 422 even when it does not."""
    runner: JobRunner = request.app.state.jobs
    return runner


SettingsDep = Annotated[Settings, Depends(_settings)]
ModelsDep = Annotated[ServiceModels, Depends(_models)]
MetricsDep = Annotated[ServiceMetrics, Depends(_metrics)]

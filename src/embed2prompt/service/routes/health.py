"""``/health`` (liveness, from memory) and ``/ready`` (the models and the API backends)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from embed2prompt.service.dependencies import ModelsDep, SettingsDep
from embed2prompt.service.health import (
    HealthReport,
    ReadyReport,
    backends,
    health_report,
    ready_report,
)

router = APIRouter()


@router.get("/health")
async def health(settings: SettingsDep, models: ModelsDep) -> HealthReport:
    """Liveness and what is loaded; open without the API key. Answered from memory:
    no call upstream, no URL or key."""
    return health_report(settings, models.inverter, models.generator_loaded)


@router.get(
    "/ready",
    responses={
        503: {
            "model": ReadyReport,
            "description": "Not ready: the models are loading, or an API backend "
            "does not answer or refuses the key (the same body)",
        }
    },
)
async def ready(settings: SettingsDep, models: ModelsDep, response: Response) -> ReadyReport:
    """Readiness: the models loaded and each API backend answering a probe
    (``GET {base_url}/models``) without refusing the key; the answer shows ``***`` for
    any user, password or query."""
    checked = await backends(settings)
    health = health_report(settings, models.inverter, models.generator_loaded)
    report = ready_report(health, checked)
    response.status_code = 200 if report.status == "ready" else 503
    return report

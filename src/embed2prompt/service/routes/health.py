"""``/health`` (liveness, from memory) and ``/ready`` (the models and the API backends)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from embed2prompt.service.dependencies import ModelsDep, SettingsDep
from embed2prompt.service.health import backends, health_report

router = APIRouter()


@router.get("/health")
async def health(settings: SettingsDep, models: ModelsDep) -> dict[str, Any]:
    """Liveness and what is loaded; open without the API key. Answered from memory:
    no call upstream, no URL or key."""
    return health_report(settings, models.inverter, models.generator_loaded)


@router.get(
    "/ready",
    responses={
        503: {
            "description": "Not ready: the models are loading, or an API backend "
            "does not answer or refuses the key (the same body)"
        }
    },
)
async def ready(settings: SettingsDep, models: ModelsDep) -> JSONResponse:
    """Readiness: the models loaded and each API backend answering a probe
    (``GET {base_url}/models``) without refusing the key; the answer shows ``***`` for
    any user, password or query."""
    reports = await backends(settings)
    is_ready = models.inverter is not None and all(r["authorised"] for r in reports.values())
    body = {
        **health_report(settings, models.inverter, models.generator_loaded),
        "backends": reports,
    }
    body["status"] = "ready" if is_ready else "not ready"
    return JSONResponse(status_code=200 if is_ready else 503, content=body)

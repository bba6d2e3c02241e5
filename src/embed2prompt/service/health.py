"""What ``GET /health`` checks: the models loaded, and whether API backends answer.

An OpenAI-compatible backend is probed with ``GET {base_url}/models`` (cheap, and served
by OpenAI, vLLM, llama.cpp and Ollama alike), with a short timeout; the key goes in the
request header only, never into the answer.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from embed2prompt.settings import Settings

PROBE_TIMEOUT_S = 3.0
_OPENAI_URL = "https://api.openai.com/v1"


async def probe_openai(settings: Settings) -> dict[str, Any]:
    """``reachable`` and the probe's latency or error, for the settings' API."""
    base_url = (settings.openai_base_url or _OPENAI_URL).rstrip("/")
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{base_url}/models", headers=headers) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return {"reachable": False, "error": type(error).__name__, "base_url": base_url}
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {
        "reachable": status < 500,
        "status": status,
        "latency_ms": latency_ms,
        "base_url": base_url,
    }


async def backends(settings: Settings) -> dict[str, Any]:
    """Each backend the settings choose: local ones are in-process; API ones are probed."""
    report: dict[str, Any] = {}
    for role, kind in (("embedder", settings.embedder), ("generator", settings.generator)):
        if kind == "local":
            report[role] = {"kind": "local", "reachable": True}
        else:
            report[role] = {"kind": kind, **await probe_openai(settings)}
    return report

"""What the service says about itself: ``GET /health`` (open) and ``GET /ready`` (behind
the key).

``/health`` answers from memory: what is loaded and which kind of backend each role
uses. It calls nothing upstream (anyone may call it, and it must not make the service
call a paid API on their behalf) and names no URL, key or other setting that can hold a
credential. ``/ready`` also probes the API backends, with ``GET {base_url}/models``
(cheap, and served by OpenAI, vLLM, llama.cpp and Ollama alike) and a short timeout,
carrying the base URL's query as every API call does (an Azure-style ``api-key``); the
URL it reports shows ``***`` in place of any user, password, query or fragment
(:func:`~embed2prompt.redaction.hide_url_credentials`), and the key goes in the probe's
header only.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from embed2prompt import __version__
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.openai_api.client import base_url_and_query
from embed2prompt.redaction import hide_url_credentials
from embed2prompt.settings import Settings

PROBE_TIMEOUT_S = 3.0
_OPENAI_URL = "https://api.openai.com/v1"


def health_report(
    settings: Settings, inverter: EmbeddingToPromptInference | None, generator_loaded: bool
) -> dict[str, Any]:
    """``/health``'s answer: liveness and what is loaded, without secrets or I/O."""
    return {
        "status": "ok" if inverter is not None else "loading",
        "version": __version__,
        "model": settings.model_path,
        "embedder": inverter.embedder.name if inverter is not None else None,
        "dimension": inverter.dimension if inverter is not None else None,
        "generator": settings.generator,
        "generator_loaded": generator_loaded,
        "backends": {
            "embedder": {"kind": settings.embedder},
            "generator": {"kind": settings.generator},
        },
    }


async def probe_openai(settings: Settings) -> dict[str, Any]:
    """``reachable`` and ``authorised`` (the API answered, and did not refuse the key
    with a 401 or 403), and the probe's latency or error, for the settings' API."""
    given = (settings.openai_base_url or _OPENAI_URL).rstrip("/")
    base_url = hide_url_credentials(given)
    without_query, query = base_url_and_query(given)
    parts = urlsplit(without_query)
    auth = None
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    elif parts.username is not None:  # a proxy's user and password in the URL
        auth = aiohttp.BasicAuth(parts.username, parts.password or "")
    path = parts.path.rstrip("/")
    probe_url = urlunsplit((parts.scheme, _without_user(parts.netloc), path, "", ""))
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(
                f"{probe_url}/models", params=query, headers=headers, auth=auth
            ) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        # The error's class only: its message may quote the URL given.
        return {
            "reachable": False,
            "authorised": False,
            "error": type(error).__name__,
            "base_url": base_url,
        }
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {
        "reachable": status < 500,
        # A revoked or wrong key answers every real call with 401 too: not ready.
        "authorised": status < 500 and status not in (401, 403),
        "status": status,
        "latency_ms": latency_ms,
        "base_url": base_url,
    }


def _without_user(netloc: str) -> str:
    return netloc.rpartition("@")[2]


async def backends(settings: Settings) -> dict[str, Any]:
    """Each backend the settings choose: local ones are in-process; API ones are probed."""
    report: dict[str, Any] = {}
    for role, kind in (("embedder", settings.embedder), ("generator", settings.generator)):
        if kind == "local":
            report[role] = {"kind": "local", "reachable": True, "authorised": True}
        else:
            report[role] = {"kind": kind, **await probe_openai(settings)}
    return report

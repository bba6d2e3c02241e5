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
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from embed2prompt import __version__
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.openai_api.client import base_url_and_query
from embed2prompt.redaction import hide_url_credentials
from embed2prompt.settings import Settings

PROBE_TIMEOUT_S = 3.0
_OPENAI_URL = "https://api.openai.com/v1"

BackendName = Literal["local", "openai"]


class BackendKind(BaseModel):
    """A backend as ``/health`` names it: in this process, or an API."""

    kind: BackendName


class _Checked(BaseModel):
    # Exactly these fields: ``/ready``'s three shapes of backend are told apart by them.
    model_config = ConfigDict(extra="forbid")


class LocalBackend(_Checked):
    """A backend in this process: nothing to reach."""

    kind: Literal["local"]
    reachable: bool
    authorised: bool


class AnsweringApi(_Checked):
    """An API backend that answered the probe."""

    kind: Literal["openai"]
    reachable: bool = Field(description="It answered with a status below 500.")
    authorised: bool = Field(description="And did not refuse the key (401 or 403).")
    status: int = Field(description="The probe's HTTP status.")
    latency_ms: float
    base_url: str = Field(description="With *** for any user, password, query or fragment.")


class SilentApi(_Checked):
    """An API backend the probe could not reach."""

    kind: Literal["openai"]
    reachable: bool
    authorised: bool
    error: str = Field(description="The failure's class only: its message may quote the URL.")
    base_url: str = Field(description="With *** for any user, password, query or fragment.")


CheckedBackend = LocalBackend | AnsweringApi | SilentApi


class HealthBackends(BaseModel):
    embedder: BackendKind
    generator: BackendKind


class CheckedBackends(BaseModel):
    embedder: CheckedBackend
    generator: CheckedBackend


class ServiceState(BaseModel):
    """What is loaded and which backends run, without secrets: ``/health`` and ``/ready``."""

    status: str
    version: str
    model: str = Field(description="The inverter's checkpoint.")
    embedder: str | None = Field(description="The loaded embedder; null while loading.")
    dimension: int | None = Field(description="The embeddings' dimension; null while loading.")
    generator: BackendName
    generator_loaded: bool


class HealthReport(ServiceState):
    """``GET /health``: liveness and what is loaded."""

    status: Literal["ok", "loading"]
    backends: HealthBackends


class ReadyReport(ServiceState):
    """``GET /ready``: what ``/health`` says, and each backend's probe."""

    status: Literal["ready", "not ready"]
    backends: CheckedBackends


def health_report(
    settings: Settings, inverter: EmbeddingToPromptInference | None, generator_loaded: bool
) -> HealthReport:
    """``/health``'s answer: liveness and what is loaded, without secrets or I/O."""
    return HealthReport(
        status="ok" if inverter is not None else "loading",
        version=__version__,
        model=settings.model_path,
        embedder=inverter.embedder.name if inverter is not None else None,
        dimension=inverter.dimension if inverter is not None else None,
        generator=settings.generator,
        generator_loaded=generator_loaded,
        backends=HealthBackends(
            embedder=BackendKind(kind=settings.embedder),
            generator=BackendKind(kind=settings.generator),
        ),
    )


def ready_report(health: HealthReport, backends: CheckedBackends) -> ReadyReport:
    """``/ready``'s answer: ready once the models are loaded and every backend answers
    without refusing the key."""
    checks = (backends.embedder, backends.generator)
    is_ready = health.status == "ok" and all(check.authorised for check in checks)
    return ReadyReport(
        **health.model_dump(exclude={"status", "backends"}),
        status="ready" if is_ready else "not ready",
        backends=backends,
    )


async def probe_openai(settings: Settings) -> AnsweringApi | SilentApi:
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
        return SilentApi(
            kind="openai",
            reachable=False,
            authorised=False,
            error=type(error).__name__,
            base_url=base_url,
        )
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return AnsweringApi(
        kind="openai",
        reachable=status < 500,
        # A revoked or wrong key answers every real call with 401 too: not ready.
        authorised=status < 500 and status not in (401, 403),
        status=status,
        latency_ms=latency_ms,
        base_url=base_url,
    )


def _without_user(netloc: str) -> str:
    return netloc.rpartition("@")[2]


async def backends(settings: Settings) -> CheckedBackends:
    """Each backend the settings choose: local ones are in-process; API ones are probed."""

    async def check(kind: BackendName) -> CheckedBackend:
        if kind == "local":
            return LocalBackend(kind="local", reachable=True, authorised=True)
        return await probe_openai(settings)

    return CheckedBackends(
        embedder=await check(settings.embedder), generator=await check(settings.generator)
    )

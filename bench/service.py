"""The service's benchmarks (issue 6): 50 concurrent clients on the synchronous
endpoint, with the OpenAI generator against the local test server, twice over to see
whether memory keeps growing; and a 100,000-embedding job upload.

    python -m bench service-load service-upload
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np

from bench.engine import Row
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.testing import OpenAITestServer, ServerConfig, free_port

_CLIENTS = 50
_REQUESTS = 300
_ROUNDS = 2
_KEY = "sk-bench"
_ROOT = Path(__file__).resolve().parents[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _wait_healthy(
    session: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            async with session.get(f"{url}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the service did not start")


@asynccontextmanager
async def _service(
    session: aiohttp.ClientSession, **settings: str
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python api/app.py`` with these settings, once /health answers: (url, process)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "EMBED2PROMPT_PORT": str(port),
            "EMBED2PROMPT_JOBS_DATABASE": f"{folder}/jobs.sqlite3",
            # as the tables in BENCHMARKS.md were measured
            "EMBED2PROMPT_MODEL_PATH": str(_ROOT / SMALL_MODEL),
            **settings,
        }
        process = subprocess.Popen(  # noqa: ASYNC220 (started once, before the clients)
            [sys.executable, "api/app.py"],
            cwd=_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(session, url, process)
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=60)


async def load() -> list[Row]:
    vectors = LocalEmbedder().embed_sync([f"benchmark text number {i}" for i in range(20)])
    timeout = aiohttp.ClientTimeout(total=600)
    with OpenAITestServer(ServerConfig(api_key=_KEY, latency_ms=200)) as api:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            _service(
                session,
                EMBED2PROMPT_GENERATOR="openai",
                OPENAI_API_KEY=_KEY,
                OPENAI_BASE_URL=api.url,
                EMBED2PROMPT_RATE_LIMIT_TIER="tier_5",
                EMBED2PROMPT_REFINEMENT_STEPS="0",
            ) as (url, process),
        ):
            body = {"embeddings": vectors[:1].tolist(), "rate_limit_tier": "tier_5"}
            async with session.post(f"{url}/generate_prompts_parallel", json=body) as r:
                await r.read()  # warm: the generator's client, the first inversion
            rss = [_rss_mib(process.pid)]
            latencies: list[float] = []
            errors = 0
            wall = 0.0

            async def client(queue: list[int]) -> None:
                nonlocal errors
                while queue:
                    number = queue.pop()
                    request = {
                        "embeddings": vectors[number % 20 : number % 20 + 1].tolist(),
                        "rate_limit_tier": "tier_5",
                    }
                    started = time.perf_counter()
                    async with session.post(
                        f"{url}/generate_prompts_parallel", json=request
                    ) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - started)

            for _round in range(_ROUNDS):  # the same load again: does memory keep growing?
                queue = list(range(_REQUESTS))
                started = time.perf_counter()
                await asyncio.gather(*(client(queue) for _ in range(_CLIENTS)))
                wall += time.perf_counter() - started
                rss.append(_rss_mib(process.pid))
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    total = _REQUESTS * _ROUNDS
    return [
        Row(
            f"service: {_CLIENTS} clients, {_ROUNDS} x {_REQUESTS} requests of 1 embedding, "
            "OpenAI generator (test server, 200 ms), one-pass inversion",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s, {total / wall:.1f} req/s, {errors} errors",
            "0 errors",
            errors == 0,
        ),
        Row(
            "service memory (RSS): before, after each round of the load",
            " -> ".join(f"{value:.0f}" for value in rss) + " MiB",
            "-",
            None,
        ),
    ]


async def upload() -> list[Row]:
    """A job of 100,000 embeddings streamed to ``POST /jobs/upload`` as float32 rows."""
    rows = np.random.default_rng(0).normal(size=(100_000, 384)).astype("<f4").tobytes()
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        _service(session) as (url, process),
    ):
        warm = {"embeddings": [[1.0] * 384] * 32, "evaluate_quality": False}
        async with session.post(f"{url}/generate_prompts_parallel", json=warm) as response:
            await response.read()  # the job runs as soon as it is stored: warm its inverter
        rss_before = _rss_mib(process.pid)
        started = time.perf_counter()
        async with session.post(
            f"{url}/jobs/upload?evaluate_quality=false",
            data=rows,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            job = await response.json()
        seconds = time.perf_counter() - started
        rss_after = _rss_mib(process.pid)
        async with session.delete(f"{url}/jobs/{job['id']}") as response:
            await response.read()
    return [
        Row(
            "service: a job of 100,000 x 384 embeddings uploaded as float32 rows (147 MiB)",
            f"{seconds:.1f} s ({job['total']} stored), RSS {rss_before:.0f} -> {rss_after:.0f} MiB",
            "100,000 accepted",
            job["total"] == 100_000,
        )
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {
    "service-load": load,
    "service-upload": upload,
}

"""The service's load benchmark (issue 6): 50 concurrent clients on the synchronous
endpoint, with the OpenAI generator against the local test server.

    python -m bench service-load
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bench.engine import Row
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.testing import OpenAITestServer, ServerConfig

_CLIENTS = 50
_REQUESTS = 300
_KEY = "sk-bench"
_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def load() -> list[Row]:
    vectors = LocalEmbedder().embed_sync([f"benchmark text number {i}" for i in range(20)])
    with OpenAITestServer(ServerConfig(api_key=_KEY, latency_ms=200)) as api:
        port = _free_port()
        env = {
            **os.environ,
            "EMBED2PROMPT_PORT": str(port),
            "EMBED2PROMPT_GENERATOR": "openai",
            "OPENAI_API_KEY": _KEY,
            "OPENAI_BASE_URL": api.url,
            "EMBED2PROMPT_RATE_LIMIT_TIER": "tier_5",
            "EMBED2PROMPT_REFINEMENT_STEPS": "0",
            "EMBED2PROMPT_JOBS_DATABASE": "/tmp/embed2prompt-bench-jobs.sqlite3",
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
            timeout = aiohttp.ClientTimeout(total=600)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await _wait_healthy(session, url, process)
                body = {"embeddings": vectors[:1].tolist(), "rate_limit_tier": "tier_5"}
                async with session.post(f"{url}/generate_prompts_parallel", json=body) as r:
                    await r.read()  # warm: the generator's client, the first inversion
                rss_before = _rss_mib(process.pid)
                latencies: list[float] = []
                errors = 0
                queue = list(range(_REQUESTS))

                async def client() -> None:
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

                started = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(_CLIENTS)))
                wall = time.perf_counter() - started
                rss_after = _rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    return [
        Row(
            f"service: {_CLIENTS} clients, {_REQUESTS} requests of 1 embedding, OpenAI generator "
            "(test server, 200 ms), one-pass inversion",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s, {_REQUESTS / wall:.1f} req/s, {errors} errors",
            "0 errors",
            errors == 0,
        ),
        Row(
            "service memory (RSS) before and after the load",
            f"{rss_before:.0f} MiB -> {rss_after:.0f} MiB",
            "-",
            None,
        ),
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"service-load": load}

"""The engine's demo (`embed2prompt demo --engine`): many API calls in parallel, under
limits, with failures retried.

It needs no API key and no network: it starts the local OpenAI-compatible test server on
loopback with real latency, a real rate limit and injected 503s, and drives it through the
official SDK exactly as it would drive OpenAI.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import SecretStr

from embed2prompt.engine import AsyncEmbeddingProcessor, OpenAIRateLimiter, RateLimitConfig
from embed2prompt.engine.metrics import RunMetrics
from embed2prompt.openai_api.client import OpenAIClient
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, ServerConfig

_LATENCY_MS = 200.0
_SERVER_RPM = 1_200
_TEXTS = [f"sample text number {i} about embeddings and prompts" for i in range(200)]
_MODEL = "text-embedding-3-small"


async def _run(server: OpenAITestServer) -> None:
    settings = Settings(openai_api_key=SecretStr("sk-local-demo"), openai_base_url=server.url)
    limits = RateLimitConfig(
        requests_per_minute=_SERVER_RPM,
        requests_per_day=100_000,
        tokens_per_minute=1_000_000,
        tokens_per_day=10_000_000,
        concurrent_requests=50,
    )
    async with OpenAIClient(settings) as client:

        async def embed(text: str) -> object:
            return await client.create_embeddings([text], model=_MODEL)

        def estimate(text: str) -> float:
            return client.estimate_embedding_tokens([text], model=_MODEL)

        # The seed's comparison: 10 items, one after another, then 5 at a time.
        unlimited = AsyncEmbeddingProcessor(max_concurrent=1)
        await unlimited.run(embed, _TEXTS[:1])  # warm up: connection, token vocabulary
        started = time.perf_counter()
        await unlimited.run(embed, _TEXTS[:10])
        sequential = time.perf_counter() - started
        parallel_processor = AsyncEmbeddingProcessor(max_concurrent=5)
        started = time.perf_counter()
        await parallel_processor.run(embed, _TEXTS[:10])
        parallel = time.perf_counter() - started
        print(f"10 embeddings, sequential:           {sequential:6.2f} s")
        print(f"10 embeddings, 5 workers:            {parallel:6.2f} s")
        print(f"speedup:                             {sequential / parallel:6.1f}x\n")

        server.configure(error_503_rate=0.05)
        limiter = OpenAIRateLimiter(limits)
        processor = AsyncEmbeddingProcessor(
            limiter=limiter, retry_policy=settings.retry_policy, max_concurrent=50
        )
        print(f"{len(_TEXTS)} embeddings, 50 workers, limit {_SERVER_RPM} RPM, 5% server 503s:")
        report = await processor.run(embed, _TEXTS, tokens=estimate)
        _print_metrics(report.metrics)


def _print_metrics(metrics: RunMetrics) -> None:
    rows = [
        ("items", f"{metrics.total} ({metrics.successful} ok, {metrics.failed} failed)"),
        (
            "attempts / retries / 429s",
            f"{metrics.attempts} / {metrics.retries} / {metrics.rate_limited}",
        ),
        ("wall time", f"{metrics.wall_time_s:.2f} s"),
        (
            "throughput",
            f"{metrics.requests_per_second:.1f} items/s "
            f"({metrics.requests_per_second * 60:.0f}/min)",
        ),
        (
            "latency mean / p50 / p95",
            f"{metrics.mean_latency_s * 1000:.0f} / "
            f"{metrics.p50_latency_s * 1000:.0f} / "
            f"{metrics.p95_latency_s * 1000:.0f} ms",
        ),
        ("time waiting on the limiter", f"{metrics.limiter_wait_s:.1f} s (all tasks)"),
        ("tokens used", f"{metrics.tokens_used}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def run_engine_demo() -> None:
    config = ServerConfig(rpm=_SERVER_RPM, limit_window_s=10, latency_ms=_LATENCY_MS)
    print("embed2prompt engine demo: a local OpenAI-compatible server, no key, no network\n")
    with OpenAITestServer(config) as server:
        asyncio.run(_run(server))
        outcomes = server.stats(arrivals=False)["outcomes"]
    print(f"\nserver saw: {outcomes} (429_limit would mean the limiter overran the limit)")

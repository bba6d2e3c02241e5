"""``GET /metrics``: the service's Prometheus metrics.

HTTP requests and their latencies by route, items processed, and what the API backends
cost: generator calls, attempts, retries, 429s, tokens and time spent waiting on the
limiter. Token usage also carries the OpenTelemetry GenAI name
(``gen_ai.client.token.usage``, as a Prometheus counter). Each app has its own registry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from embed2prompt.pipeline import PromptGenerationResponse, PromptResult


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "embed2prompt_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "embed2prompt_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.items = Counter(
            "embed2prompt_items",
            "Embeddings processed, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.generator_calls = Counter(
            "embed2prompt_generator_calls", "Generator calls made.", registry=registry
        )
        self.api_attempts = Counter(
            "embed2prompt_api_attempts", "API attempts, retries included.", registry=registry
        )
        self.retries = Counter("embed2prompt_api_retries", "API retries.", registry=registry)
        self.rate_limited = Counter(
            "embed2prompt_api_rate_limited", "429 responses from APIs.", registry=registry
        )
        self.limiter_wait = Counter(
            "embed2prompt_limiter_wait_seconds",
            "Seconds calls waited on the rate limiter.",
            registry=registry,
        )
        self.tokens = Counter(
            "gen_ai_client_token_usage",
            "Tokens used by API calls (OpenTelemetry GenAI: gen_ai.client.token.usage).",
            ["gen_ai_token_type"],
            registry=registry,
        )

    def record_items(self, results: list[PromptResult]) -> None:
        for result in results:
            outcome = "success" if result.original_result.success else "failure"
            self.items.labels(outcome).inc()

    def record_run(self, response: PromptGenerationResponse) -> None:
        self.record_items(response.results)
        if response.metadata is None:
            return
        metrics = response.metadata.performance_metrics
        self.generator_calls.inc(metrics.generator_calls)
        self.api_attempts.inc(metrics.api_attempts)
        self.retries.inc(metrics.retries)
        self.rate_limited.inc(metrics.rate_limited)
        self.tokens.labels("total").inc(metrics.tokens_used)
        for usage in metrics.rate_limits:
            self.limiter_wait.inc(usage.time_waiting_s)

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.requests.labels(request.method, path, str(response.status_code)).inc()
        self.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

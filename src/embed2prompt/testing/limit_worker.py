"""One of several processes sharing a rate limit through Redis (tests and benchmarks).

    python -m embed2prompt.testing.limit_worker --redis redis://127.0.0.1:6379/0 \\
        --name org --rpm 600 --base-url http://127.0.0.1:PORT/v1 --api-key KEY --seconds 15

Embeds short texts against an OpenAI-compatible server as fast as the shared limiter
allows, for ``--seconds``, and prints one JSON line: calls that succeeded, 429s seen.
Started in several processes at once, together they must keep the one limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from itertools import count

from pydantic import SecretStr

from embed2prompt.engine.processor import AsyncEmbeddingProcessor
from embed2prompt.engine.redis_limiter import RedisRateLimiter
from embed2prompt.engine.retry import RetryPolicy
from embed2prompt.engine.tiers import RateLimitConfig
from embed2prompt.openai_api.client import OpenAIClient
from embed2prompt.settings import Settings

MODEL = "text-embedding-3-small"


async def run(args: argparse.Namespace) -> dict[str, int]:
    config = RateLimitConfig(
        requests_per_minute=args.rpm,
        requests_per_day=1e9,
        tokens_per_minute=1e9,
        tokens_per_day=1e12,
        concurrent_requests=args.concurrency,
    )
    limiter = RedisRateLimiter(config, url=args.redis, name=args.name)
    client = OpenAIClient(
        Settings(openai_api_key=SecretStr(args.api_key), openai_base_url=args.base_url)
    )
    processor = AsyncEmbeddingProcessor(
        limiter=limiter, retry_policy=RetryPolicy(), max_concurrent=args.concurrency
    )

    async def embed(text: str) -> object:
        return await client.create_embeddings([text], model=MODEL)

    async def endless() -> AsyncIterator[str]:
        for i in count():
            yield f"sentence number {i} for the shared limit"

    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.seconds
    ok = 0
    try:
        async with processor.stream(embed, endless(), ordered=False) as stream:
            async for result in stream:
                ok += result.ok
                if loop.time() > deadline:
                    break
            metrics = stream.metrics
    finally:
        await client.close()
        await limiter.aclose()
    return {"ok": ok, "rate_limited": metrics.rate_limited, "failed": metrics.failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--rpm", type=float, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=20)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()

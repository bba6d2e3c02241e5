"""``python test_parallel_processing.py``: the seed's comprehensive check of the pipeline.

Generates 10 test embeddings (of varied sample texts, with the inverter's embedder), processes
them in parallel and one at a time, compares the two, and shows the performance metrics
and sample results. Uses the settings of the environment: their inverter, its embedder
and generator (local models by default; EMBED2PROMPT_GENERATOR=openai and OPENAI_API_KEY
for an API). Exits 1 on any failure.
"""

from __future__ import annotations

import asyncio
import sys
import time


async def check() -> list[str]:
    from embed2prompt.backends import create_inverter
    from embed2prompt.demos.main_job import DEMO_TEXTS, print_response
    from embed2prompt.pipeline import ParallelPromptGenerator, PromptGenerationResponse
    from embed2prompt.settings import Settings

    problems: list[str] = []
    settings = Settings()
    inverter = create_inverter(settings)  # the settings' checkpoint and its embedder
    embeddings = await inverter.embedder.embed(DEMO_TEXTS[:10])
    print(
        f"1. generated {len(embeddings)} test embeddings ({inverter.embedder.name}), "
        f"inverted by {inverter.model_path}"
    )
    async with ParallelPromptGenerator(inverter, settings, "tier_2") as generator:
        runs: dict[int, tuple[float, PromptGenerationResponse]] = {}
        for concurrency in (5, 1):
            started = time.perf_counter()
            response = await generator.generate_prompts_with_evaluation(
                embeddings, max_concurrent=concurrency
            )
            runs[concurrency] = (time.perf_counter() - started, response)
            label = "in parallel (5 concurrent)" if concurrency > 1 else "sequentially"
            print(f"2. processed {label}: {runs[concurrency][0]:.1f} s")
    (parallel_s, parallel), (sequential_s, sequential) = runs[5], runs[1]
    print(f"3. speedup of parallel over sequential: {sequential_s / parallel_s:.2f}x")
    metrics = parallel.metadata.performance_metrics if parallel.metadata else None
    if metrics is not None:
        print(
            f"4. performance: {metrics.requests_per_second:.2f} embeddings/s, "
            f"{metrics.average_processing_time:.1f} s each "
            f"(p95 {metrics.p95_processing_time:.1f} s), "
            f"{metrics.generator_calls} generator calls, {metrics.retries} retries"
        )
    print("5. sample results (parallel run):\n")
    print_response(parallel, DEMO_TEXTS[:10])
    for name, response in (("parallel", parallel), ("sequential", sequential)):
        if response.summary.failed:
            problems.append(f"{response.summary.failed} of 10 items failed in the {name} run")
        if len(response.results) != 10:
            problems.append(f"the {name} run returned {len(response.results)} results, not 10")
    return problems


def main() -> int:
    problems = asyncio.run(check())
    for problem in problems:
        print(f"FAILED: {problem}")
    print("\nall checks passed" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

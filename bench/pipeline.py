"""The pipeline's benchmarks (issue 5): the seed's sequential-versus-parallel comparison,
with the OpenAI generator against the local test server and on the local default;
quality with the default checkpoint (or the small decoder) on the out-of-domain set and
on held-out texts; and the fluency weight's effect on texts it was not tuned on.

    python -m bench pipeline-speedup pipeline-local pipeline-quality pipeline-fluency
    python -m bench pipeline-quality-small  # the small decoder's quality, for comparison
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from bench.engine import Row
from embed2prompt.corpus.held_out import out_of_domain_texts, pipeline_held_out_texts
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.budget import PIPELINE_SEARCH
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.model_paths import DEFAULT_MODEL, SMALL_MODEL
from embed2prompt.pipeline import ParallelPromptGenerator, PromptGenerationResponse
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, ServerConfig

_SEED_LATENCY_S = 1.5
_KEY = "sk-bench"


async def _timed(
    pipeline: ParallelPromptGenerator, targets: np.ndarray, concurrency: int, **options: bool
) -> tuple[float, PromptGenerationResponse]:
    started = time.perf_counter()
    response = await pipeline.generate_prompts_with_evaluation(
        targets, max_concurrent=concurrency, **options
    )
    return time.perf_counter() - started, response


async def _comparison(settings: Settings, label: str, target: float | None) -> list[Row]:
    """10 embeddings one at a time, then 5 at a time, alternating, medians of 3."""
    embedder = LocalEmbedder()
    # The small decoder, which its tables in BENCHMARKS.md were measured with.
    inverter = EmbeddingToPromptInference(SMALL_MODEL, embedder=embedder)
    targets = embedder.embed_sync(out_of_domain_texts()[:10])
    sequential, parallel = [], []
    async with ParallelPromptGenerator(inverter, settings) as pipeline:
        await _timed(pipeline, targets[:2], 2)  # warm up: models loaded, connections open
        for _ in range(3):
            seconds, response = await _timed(pipeline, targets, 1)
            assert response.summary.failed == 0, response.summary
            sequential.append(seconds)
            seconds, response = await _timed(pipeline, targets, 5)
            assert response.summary.failed == 0, response.summary
            parallel.append(seconds)
    seq, par = statistics.median(sequential), statistics.median(parallel)
    speedup = seq / par
    return [
        Row(
            f"pipeline: 10 embeddings, sequential vs 5 concurrent, {label}",
            f"{seq:.1f} s vs {par:.1f} s: {speedup:.2f}x",
            f">= {target}x" if target else "-",
            speedup >= target if target else None,
        )
    ]


async def speedup() -> list[Row]:
    """The seed's comparison with the OpenAI generator against the test server at 1.5 s:
    one-pass inversion as in the seed's system, then with the default refinement, whose
    CPU time (batched across concurrent items, but not overlapped) bounds the speedup."""
    rows = []
    with OpenAITestServer(ServerConfig(api_key=_KEY, latency_ms=_SEED_LATENCY_S * 1000)) as server:
        for steps, target in ((0, 4.5), (Settings().refinement_steps, None)):
            settings = Settings(
                openai_api_key=SecretStr(_KEY),
                openai_base_url=server.url,
                generator="openai",
                refinement_steps=steps,
            )
            label = f"OpenAI generator at 1.5 s, {steps} refinement steps"
            rows += await _comparison(settings, label, target)
    return rows


async def local() -> list[Row]:
    """The same comparison on the local default (SmolLM2, MiniLM): batching's gain."""
    return await _comparison(Settings(), "local SmolLM2 + MiniLM", None)


async def quality() -> list[Row]:
    """:func:`_quality` with the settings' checkpoint: the default, or the one
    ``EMBED2PROMPT_MODEL_PATH`` names (a candidate measured before it becomes the default)."""
    path = Path(Settings().model_path)
    label = "fluent (default)" if path == DEFAULT_MODEL else str(path)
    return await _quality(label, path)


async def quality_small() -> list[Row]:
    """:func:`_quality` with the small decoder, for comparison."""
    return await _quality("small decoder", SMALL_MODEL)


async def _quality(label: str, path: Path) -> list[Row]:
    """Average similarity of generations without and with 3 variants (one run: the
    originals are the no-variant figures), on the local default with the checkpoint at
    ``path``: on the out-of-domain set (which chose settings) and on held-out texts that
    tuned nothing, whose rows carry issue 16's targets."""
    embedder = LocalEmbedder()
    sets = {
        "out-of-domain": (out_of_domain_texts(), (0.75, 0.80)),
        "held-out": (pipeline_held_out_texts(), (0.80, 0.85)),
    }
    settings = Settings()
    rows = []
    inverter = EmbeddingToPromptInference(path, embedder=embedder)
    for name, (texts, (plain_target, best_target)) in sets.items():
        targets = embedder.embed_sync(texts)
        async with ParallelPromptGenerator(inverter, settings) as pipeline:
            seconds, response = await _timed(pipeline, targets, 5, generate_variants=True)
        summary = response.summary
        plain = summary.average_similarity or 0.0
        best = summary.average_best_similarity or 0.0
        rows += [
            Row(
                f"pipeline quality, {label}, {len(texts)} {name} texts: generations, no variants",
                f"{plain:.3f} (prompts {summary.average_prompt_similarity:.3f}; "
                f"{seconds / len(texts):.1f} s an embedding, 5 concurrent)",
                f">= {plain_target}",
                plain >= plain_target,
            ),
            Row(
                f"pipeline quality, {label}, {name}: best of prompt and 3 variants",
                f"{best:.3f}",
                f">= {best_target}",
                best >= best_target,
            ),
        ]
    return rows


async def fluency() -> list[Row]:
    """Generations without variants on the held-out texts, ranking refinement by cosine
    alone and with the default fluency weight, side by side in one run."""
    texts = pipeline_held_out_texts()  # written after the weight was tuned
    embedder = LocalEmbedder()
    # The small decoder, whose search the pipeline's weight was tuned for.
    inverter = EmbeddingToPromptInference(SMALL_MODEL, embedder=embedder)
    targets = embedder.embed_sync(texts)
    rows = []
    for weight in (0.0, PIPELINE_SEARCH["fluency"]):  # the pipeline's default weight
        async with ParallelPromptGenerator(
            inverter, Settings(refinement_fluency=weight)
        ) as pipeline:
            _, response = await _timed(pipeline, targets, 5)
        summary = response.summary
        rows.append(
            Row(
                f"pipeline, {len(texts)} held-out texts, fluency weight {weight}: generations",
                f"{summary.average_similarity or 0.0:.3f} "
                f"(prompts {summary.average_prompt_similarity:.3f})",
                "-",
                None,
            )
        )
    return rows


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {
    "pipeline-speedup": speedup,
    "pipeline-local": local,
    "pipeline-quality": quality,
    "pipeline-quality-small": quality_small,
    "pipeline-fluency": fluency,
}

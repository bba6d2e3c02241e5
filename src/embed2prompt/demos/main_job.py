"""The main job on the embedded defaults (`make demo`, `embed2prompt demo`).

Embeds about ten varied texts with the local all-MiniLM-L6-v2, then runs the seed's
pipeline on those embeddings as if they were all a user had: invert each back to a prompt,
judge it by what the local SmolLM2 writes from it, refine variants, keep the best. No API
key, no network: every model comes from an installed package or the repository.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

from embed2prompt.corpus.held_out import demo_texts
from embed2prompt.pipeline.results import PromptGenerationResponse

# Kept out of every corpus and prompt bank, like the evaluation sets: the demo's figures
# are quoted too.
DEMO_TEXTS = demo_texts()


def run_demo(
    *, max_concurrent: int = len(DEMO_TEXTS), model_path: str | Path | None = None
) -> PromptGenerationResponse:
    """The pipeline on the ten demo texts. All ten run at once by default: their
    inversions then share one batch (3 s faster than two waves of 5, same results).
    ``model_path``: the inverter's checkpoint (default: the settings' model, the fluent
    inverter unless ``EMBED2PROMPT_MODEL_PATH`` names another)."""
    from embed2prompt.backends import create_inverter
    from embed2prompt.pipeline import ParallelPromptGenerator
    from embed2prompt.settings import Settings

    started = time.perf_counter()
    settings = Settings()
    # The texts are embedded here, by the local model: the inverter is for its vectors.
    local = settings.model_copy(update={"embedder": "local", "embedding_model": None})
    inverter = create_inverter(local.model_copy(update={"aligner": None}), model_path=model_path)
    embedder = inverter.embedder
    language_model = inverter.info.language_model
    writer = (
        f"the fluent inverter ({language_model} reading the embedding)"
        if language_model
        else "the small decoder"
    )
    print(
        f"embed2prompt demo: {len(DEMO_TEXTS)} texts embedded with {embedder.name} (local), "
        f"turned back into prompts by {writer} ({settings.refinement_steps} refinement "
        "steps), each judged "
        f"by what SmolLM2-135M (local) writes from it, with {settings.num_variants} variants.\n"
    )
    targets = asyncio.run(embedder.embed(DEMO_TEXTS))

    async def run() -> PromptGenerationResponse:
        async with ParallelPromptGenerator(inverter, settings) as pipeline:
            return await pipeline.generate_prompts_with_evaluation(
                targets, max_concurrent=max_concurrent, generate_variants=True
            )

    response = asyncio.run(run())
    print_response(response, DEMO_TEXTS)
    print(f"\ntotal time, models loaded included: {time.perf_counter() - started:.1f} s")
    return response


def print_response(response: PromptGenerationResponse, texts: list[str] | None = None) -> None:
    """The results as a table and the summary, for people rather than programs."""
    for result in response.results:
        original = result.original_result
        header = f"#{result.embedding_index}"
        if texts is not None:
            header += f"  target text: {texts[result.embedding_index]}"
        print(header)
        if not original.success:
            print(f"    FAILED: {original.error}")
        print(
            _line("prompt", result.original_prompt, original.prompt_similarity, original.similarity)
        )
        best = result.best_variant
        if best is not None:
            print(
                _line(
                    f"best variant ({best.source})",
                    best.prompt,
                    best.prompt_similarity,
                    best.similarity,
                )
            )
    summary = response.summary
    rows = [
        (
            "embeddings",
            f"{summary.total_processed} ({summary.successful} ok, {summary.failed} failed)",
        ),
        (
            "similarity of generations",
            _stats(summary.average_similarity, summary.min_similarity, summary.max_similarity),
        ),
        ("similarity of prompts (mean)", _number(summary.average_prompt_similarity)),
        ("best of prompt and variants (mean)", _number(summary.average_best_similarity)),
        ("gain from variants (mean)", _number(summary.average_variant_gain, signed=True)),
        ("wall time", f"{summary.processing_time:.1f} s"),
    ]
    if response.metadata is not None:
        metrics = response.metadata.performance_metrics
        rows.append(
            (
                "per embedding (mean / p95)",
                f"{metrics.average_processing_time:.1f} / {metrics.p95_processing_time:.1f} s",
            )
        )
        rows.append(
            (
                "generator calls / texts embedded",
                f"{metrics.generator_calls} / {metrics.embedded_texts}",
            )
        )
    width = max(len(name) for name, _ in rows)
    print("\nsummary")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def _line(
    label: str, prompt: str | None, prompt_similarity: float | None, similarity: float | None
) -> str:
    scores = f"prompt {_number(prompt_similarity)}, generation {_number(similarity)}"
    wrapped = textwrap.shorten(prompt or "-", width=90, placeholder=" ...")
    return f"    {label}: {wrapped!r}\n        ({scores})"


def _number(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _stats(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return "- (quality evaluation off)"
    return f"mean {mean:.3f} (min {_number(low)}, max {_number(high)})"

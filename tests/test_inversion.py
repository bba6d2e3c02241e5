"""The inverter: model, checkpoints, training resume, and inversion's contract.

A tiny model trained for a few steps on a small corpus: these tests check behaviour
(shapes, safety, validation, resume, budgets), not quality, which BENCHMARKS.md records.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embed2prompt import ConfigurationError, InputError
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.budget import SearchBudget
from embed2prompt.inversion.checkpoint import load_checkpoint
from embed2prompt.inversion.decoding import sample
from embed2prompt.inversion.inference import EmbeddingToPromptInference, check_embeddings
from embed2prompt.inversion.lexical_search import Lexicon
from embed2prompt.inversion.model import Inverter, InverterConfig
from embed2prompt.inversion.moves import InverterMoves
from embed2prompt.inversion.retrieval import load_bank_for
from embed2prompt.inversion.training import TrainingOptions, train
from tests.counting import CountingEmbedder
from tests.test_cli import run

TINY = InverterConfig(vocab_size=400, prefix_length=2, max_tokens=16, width=32, layers=1, heads=2)
TEXTS = [
    "the cat sat on the mat",
    "a dog barked at the moon",
    "how do I reset my password",
    "write a poem about the sea",
    "rate limits protect the server",
    "embeddings can leak private text",
] * 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "train.txt").write_text("\n".join(TEXTS) + "\n")
    (folder / "val.txt").write_text("\n".join(TEXTS[:6]) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"splits": {"train": len(TEXTS)}}))
    return folder


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def checkpoint(
    corpus: Path, embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("run") / "model.pt"
    options = TrainingOptions(
        corpus=corpus,
        checkpoint=path,
        steps=30,
        batch_size=16,
        eval_every=15,
        warmup_steps=5,
        learning_rate=3e-3,
        model=TINY,
    )
    return train(options, embedder, progress=False)


def test_logits_have_the_documented_shape() -> None:
    model = Inverter(TINY)
    logits = model(torch.randn(3, 384), torch.randint(3, 400, (3, 7)))
    assert logits.shape == (3, 8, 400)  # the token after each of the 7, and the first


def test_cached_decoding_writes_what_the_full_forward_pass_predicts() -> None:
    """The key/value cache is an optimisation only: greedy decoding with it gives the
    tokens that re-reading the whole sequence each step gives, and a sampled row beside
    greedy ones does not change them."""
    torch.manual_seed(0)
    model = Inverter(replace(TINY, max_tokens=12)).eval()
    embeddings = torch.randn(4, 384)
    cached = sample(model, embeddings, temperature=0.0)
    tokens = torch.zeros((4, 0), dtype=torch.long)
    with torch.no_grad():
        for _ in range(12):
            logits = model(embeddings, tokens)[:, -1]
            logits[:, [TINY.pad_id, TINY.bos_id]] = -torch.inf
            tokens = torch.cat([tokens, logits.argmax(dim=-1, keepdim=True)], dim=1)
    for row, written in zip(tokens.tolist(), cached, strict=True):
        end = row.index(TINY.eos_id) + 1 if TINY.eos_id in row else len(row)
        assert written == row[:end]
    mixed = sample(model, embeddings, temperature=torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert mixed[0] == cached[0]
    assert mixed[2] == cached[2]


def test_training_lowers_the_loss_and_writes_a_safe_checkpoint(checkpoint: Path) -> None:
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    assert document["embedder"] == {"name": "all-MiniLM-L6-v2", "dimension": 384}
    assert document["model"]["width"] == 32
    assert "tokenizer" in document
    validation = document["training"]["last_validation"]
    assert validation["step"] == 30
    assert validation["val_loss"] < 5.9  # from ln(400) = 6.0 at the start
    weights = torch.load(checkpoint, weights_only=True)  # no pickled objects inside
    assert all(tensor.dtype == torch.float16 for tensor in weights.values())
    _, tokenizer, info = load_checkpoint(checkpoint)
    assert info.embedder_dimension == 384
    assert tokenizer.get_vocab_size() <= 400


def test_training_resumes_from_its_checkpoint(
    checkpoint: Path, corpus: Path, embedder: LocalEmbedder
) -> None:
    options = TrainingOptions(
        corpus=corpus,
        checkpoint=checkpoint,
        steps=40,
        batch_size=16,
        eval_every=10,
        warmup_steps=5,
        model=TINY,
    )
    train(options, embedder, progress=False)
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    assert document["training"]["last_validation"]["step"] == 40  # continued, not restarted


def test_the_train_command_trains_the_small_decoder_and_refuses_fluent_options(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli.pt"
    common = ["train", "--corpus", str(corpus), "--out", str(out), "--no-progress"]
    result = run(*common, "--steps", "2", "--batch-size", "4", "--eval-every", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["training"]["last_validation"]["step"] == 2
    assert document["training"]["options"]["batch_size"] == 4
    misplaced = run(*common, "--texts", str(tmp_path / "texts.txt"), "--prefix-length", "2")
    assert misplaced.returncode == 2
    assert "--texts, --prefix-length only apply to the fluent inverter" in misplaced.stderr
    assert "Traceback" not in misplaced.stderr


def test_training_keeps_its_texts_as_the_prompt_bank(checkpoint: Path) -> None:
    bank = load_bank_for(checkpoint, "all-MiniLM-L6-v2", 384)
    assert bank is not None
    assert sorted(bank.texts) == sorted(set(TEXTS))  # each training text once


def test_one_pass_finds_a_training_text_through_the_bank(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    """A tiny model trained for 30 steps cannot write "embeddings can leak private text";
    its prompt bank holds it, so one pass returns it at cosine 1. Without retrieval
    (``neighbours=0``) the bank is not even loaded."""
    target = embedder.embed_sync(["embeddings can leak private text"])[0]
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    found = inverter.invert(target)
    assert found.prompt == "embeddings can leak private text"
    assert found.cosine == pytest.approx(1.0, abs=1e-4)
    without = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2, neighbours=0)
    assert without.bank is None
    assert without.invert(target).cosine < found.cosine
    with pytest.raises(InputError, match="neighbours must be >= 0"):
        EmbeddingToPromptInference(checkpoint, embedder=embedder, neighbours=-1)
    with pytest.raises(InputError, match="candidates must be >= 1"):
        EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=0)


def test_inversion_returns_prompt_cosine_and_trace(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=3)
    target = embedder.embed_sync(["the cat sat on the mat"])[0]
    one_pass = inverter.invert(target)
    assert isinstance(one_pass.prompt, str)
    assert one_pass.prompt
    assert one_pass.trace == [pytest.approx(one_pass.cosine)]
    refined = inverter.invert(target, steps=2, beam=2)
    assert len(refined.trace) == 3
    assert refined.trace == sorted(refined.trace)  # the beam keeps the best: never worse
    assert refined.cosine == pytest.approx(refined.trace[-1])
    cosine = float(embedder.embed_sync([refined.prompt])[0] @ target)
    assert cosine == pytest.approx(refined.cosine, abs=1e-4)


def test_budgets_stop_the_search(checkpoint: Path, embedder: LocalEmbedder) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    target = embedder.embed_sync(["write a poem about the sea"])[0]
    limited = inverter.invert(target, steps=50, beam=2, max_embedder_calls=1)
    assert len(limited.trace) == 1  # the first scoring already spent the budget
    # Every SearchBudget field is a keyword of invert; another name is refused by name.
    shortlisted = inverter.invert(target, steps=1, fluency=0.1, fluency_shortlist=2)
    assert len(shortlisted.trace) == 2
    with pytest.raises(InputError, match="unknown search setting 'stepz'"):
        inverter.invert(target, stepz=2)


def test_each_target_counts_its_own_embedder_calls_and_keeps_its_own_budget(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    counting = CountingEmbedder(embedder)
    inverter = EmbeddingToPromptInference(checkpoint, embedder=counting, candidates=3)
    asyncio.run(inverter._lexicon())  # embedded once (unless cached), outside the counts
    texts = ["the cat sat on the mat", "how do I reset my password", "tea or coffee?"]
    targets = embedder.embed_sync(texts)
    for budget in (float("inf"), 30):
        counting.texts = 0
        results = inverter.invert_batch(targets, steps=4, edits=12, max_embedder_calls=budget)
        assert sum(r.embedder_calls for r in results) == counting.texts  # exact, not a share
        for result in results:
            # A target stops once over its budget (the step that crosses it may pass it).
            assert result.embedder_calls <= budget + 12
            assert len(result.trace) - 1 <= 4
    assert any(len(r.trace) < 5 for r in results)  # 30 calls stopped some before 4 steps
    for target, in_batch in zip(targets, results, strict=True):
        alone = inverter.invert(target, steps=4, edits=12, max_embedder_calls=30)
        # Each target keeps its own budget: alone or in a batch, the same search.
        assert (alone.prompt, alone.trace, alone.embedder_calls) == (
            in_batch.prompt,
            in_batch.trace,
            in_batch.embedder_calls,
        )


def test_a_target_gets_the_same_prompt_alone_or_in_any_batch(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    """Every random choice for a target is seeded by the target: batch composition (the
    pipeline's, a Ray actor's) never changes a result."""
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=4)
    texts = ["a dog barked at the moon", "rate limits protect the server", "tea or coffee?"]
    targets = embedder.embed_sync(texts)
    for steps in (0, 2):
        together = inverter.invert_batch(targets, steps=steps, beam=2, edits=8)
        reversed_batch = inverter.invert_batch(targets[::-1], steps=steps, beam=2, edits=8)
        alone = [inverter.invert(target, steps=steps, beam=2, edits=8) for target in targets]
        prompts = [result.prompt for result in together]
        assert [result.prompt for result in reversed_batch[::-1]] == prompts
        assert [result.prompt for result in alone] == prompts
    other_seed = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=4, seed=1)
    differing = other_seed.invert_batch(targets, steps=2, beam=2, edits=8)
    assert [result.candidates for result in differing] != [r.candidates for r in together]


def test_the_lexicons_embeddings_are_cached_in_the_cache_dir_not_beside_the_checkpoint(
    checkpoint: Path, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    import asyncio
    import shutil

    copy = tmp_path / "run" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(checkpoint, copy)
    shutil.copy(checkpoint.with_suffix(".json"), copy.with_suffix(".json"))
    cache_dir = tmp_path / "cache"

    def lexicon() -> Lexicon:
        inverter = EmbeddingToPromptInference(copy, embedder=embedder, cache_dir=cache_dir)
        return asyncio.run(inverter._lexicon())

    first = lexicon()
    assert sorted(path.name for path in copy.parent.iterdir()) == ["model.json", "model.pt"]
    [cache] = (cache_dir / "lexicons").iterdir()
    assert cache.name.startswith(f"{embedder.name}-384d-")
    with np.load(cache) as stored:
        key, codes, scales = str(stored["key"]), stored["codes"], stored["scales"]
    assert codes.dtype == np.int8  # a quarter of float32's size
    assert np.array_equal(codes * scales, first.vectors)  # the first run searches as later ones
    assert np.allclose(first.vectors, embedder.embed_sync(first.words), atol=0.01)
    np.savez(cache, key=np.array(key), codes=np.ones_like(codes), scales=np.ones_like(scales))
    cached = lexicon()
    assert cached.words == first.words
    assert np.all(cached.vectors == 1.0)  # read from the cache, not embedded again
    np.savez(cache, key=np.array("another"), codes=np.ones_like(codes), scales=scales)
    rebuilt = lexicon()
    assert np.array_equal(rebuilt.vectors, first.vectors)  # a foreign cache is ignored


def test_batches_keep_their_order(checkpoint: Path, embedder: LocalEmbedder) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    targets = embedder.embed_sync(["a dog barked at the moon", "rate limits protect the server"])
    results = inverter.invert_batch(targets)
    assert len(results) == 2
    for result, target in zip(results, targets, strict=True):
        assert float(embedder.embed_sync([result.prompt])[0] @ target) == pytest.approx(
            result.cosine, abs=1e-4
        )


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.zeros(384), "all zeros"),
        (np.full(384, np.nan), "NaN or infinite"),
        (np.r_[np.ones(383), np.inf], "NaN or infinite"),
        (np.ones(128), "dimension 128"),
        ([[1.0] * 384, [0.0] * 384], "embedding 1 is all zeros"),
        ("not numbers", "must be numbers"),
        (np.ones((0, 384)), "non-empty"),
    ],
)
def test_bad_vectors_are_refused(vectors: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_embeddings(vectors, 384)


def test_vectors_are_normalised() -> None:
    rows = check_embeddings(np.full((2, 384), 3.0), 384)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no inverter checkpoint"):
        EmbeddingToPromptInference(tmp_path / "none.pt")


def test_invert_command_marks_bad_rows_and_keeps_the_rest(
    checkpoint: Path, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    import subprocess
    import sys

    good = embedder.embed_sync(["the cat sat on the mat"])[0].tolist()
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "ok", "embedding": good})
        + "\n"
        + json.dumps({"id": "zero", "embedding": [0.0] * 384})
        + "\n"
        + json.dumps({"id": "short", "embedding": [1.0, 2.0]})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "embed2prompt",
            "invert",
            str(source),
            "-o",
            str(out),
            "--inverter",
            str(checkpoint),
            "--steps",
            "0",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1  # some rows failed
    rows = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda row: row["index"]
    )
    assert [row["id"] for row in rows] == ["ok", "zero", "short"]
    assert rows[0]["success"] is True
    assert rows[0]["prompt"]
    assert -1.0 <= rows[0]["prompt_similarity"] <= 1.0
    assert rows[1]["error"] == "the embedding is all zeros; it has no direction to invert"
    assert "dimension 2" in rows[2]["error"]
    assert not rows[2]["success"]


def test_token_f1() -> None:
    from embed2prompt.inversion.evaluation import token_f1

    assert token_f1("The cat sat", "the cat sat") == 1.0
    assert token_f1("a dog", "the cat") == 0.0
    assert token_f1("the cat ran", "the cat sat") == pytest.approx(2 / 3)


def test_evaluation_reports_the_fields_metrics(checkpoint: Path, embedder: LocalEmbedder) -> None:
    from embed2prompt.corpus.held_out import out_of_domain_texts
    from embed2prompt.inversion.evaluation import evaluate_inversion

    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    scores, examples = evaluate_inversion(
        inverter, TEXTS[:6], budget=inverter.search_budget(steps=1, beam=2)
    )
    assert scores.texts == 6
    assert 0 <= scores.bleu <= 100
    assert -1 <= scores.median_cosine <= scores.mean_cosine + 1
    assert scores.embedder_calls_per_target >= 2  # candidates scored, then one step
    assert [original for original, _, _ in examples] == TEXTS[:6]
    assert len(out_of_domain_texts()) == 40
    assert scores.neighbours == SearchBudget().neighbours
    assert scores.exact_match == 100  # every training text is in the prompt bank
    without_bank = EmbeddingToPromptInference(
        checkpoint, embedder=embedder, candidates=2, neighbours=0
    )
    plain, _ = evaluate_inversion(without_bank, TEXTS[:6])
    assert plain.neighbours == 0
    assert plain.exact_match < 100
    assert plain.prompt_log_prob is plain.english_percent is None  # no judge, no readability
    with pytest.raises(InputError, match="none of the 2 texts has at most 24 words"):
        evaluate_inversion(inverter, ["word " * 40, "longer " * 50])


@pytest.mark.slow
def test_evaluation_judges_readability_against_the_originals(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    from embed2prompt.inversion.evaluation import evaluate_inversion
    from embed2prompt.inversion.readability import ReadabilityJudge

    judge = ReadabilityJudge(threads=2)
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    exact, _ = evaluate_inversion(inverter, TEXTS[:6], judge=judge)
    assert exact.exact_match == 100  # the bank returns the texts themselves
    assert exact.prompt_log_prob == exact.original_log_prob
    assert exact.english_percent == 83.3  # originals: 5 of 6 reach their own 10th percentile
    blind = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2, neighbours=0)
    tiny_model, examples = evaluate_inversion(blind, TEXTS[:6], judge=judge)
    assert tiny_model.original_log_prob == exact.original_log_prob
    prompts = [prompt for _, prompt, _ in examples]
    assert tiny_model.prompt_log_prob == pytest.approx(
        sum(judge.score(prompts)) / len(prompts), abs=1e-3
    )
    assert tiny_model.english_percent is not None
    assert 0 <= tiny_model.english_percent <= 100


def test_a_search_with_nothing_to_propose_takes_no_steps(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=2)
    target = embedder.embed_sync(["write a poem about the sea"])[0]
    assert len(inverter.invert(target, steps=5, edits=0).trace) == 1  # no edits, no decoding
    assert len(inverter.invert(target, steps=2, edits=0, strength=0.5).trace) == 3
    with pytest.raises(InputError, match=r"strength=-0\.5"):
        inverter.invert(target, steps=1, strength=-0.5)


def test_token_edits_change_one_token_to_what_the_inverter_finds_likelier(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, neighbours=0)
    target = embedder.embed_sync(["how do I reset my password"])[0]
    hypothesis = "rate limits protect the moon"
    text_model = inverter.text_model
    moves = InverterMoves(text_model, inverter.seed)
    (edits,) = moves.token_edits([hypothesis], target[None, :], 6)
    assert 1 <= len(edits) <= 6
    assert hypothesis not in edits
    assert len(set(edits)) == len(edits)
    (ids,) = text_model.encode([hypothesis])
    # The first edit is the likeliest change: the token the inverter prefers most, over
    # all positions, to the hypothesis's own (ending the text only inside it).
    log_probs = text_model.position_log_probs([ids], target[None, :])[0]
    log_probs[:, list(text_model.decoder.banned_ids)] = -torch.inf
    eos = text_model.decoder.eos_id
    best = max(
        (float(log_probs[j, token]), j, token)
        for j in range(len(ids) + 1)
        for token in range(log_probs.shape[1])
        if (j == len(ids) or token != ids[j]) and (token != eos or 0 < j < len(ids))
    )
    _, j, token = best
    expected = ids[:j] if token == eos else [*ids[:j], token, *ids[j + 1 :]]
    assert edits[0] == text_model.decode([expected])[0]
    one_pass = inverter.invert(target)
    refined = inverter.invert(target, steps=2, edits=0, token_edits=4)
    assert len(refined.trace) == 3  # token edits alone are proposals: steps happen
    assert refined.embedder_calls > one_pass.embedder_calls  # and they were scored
    assert refined.trace == sorted(refined.trace)  # fluency 0: the cosine never falls
    with pytest.raises(InputError, match="token_edits=-1"):
        inverter.invert(target, steps=1, token_edits=-1)


def test_fluency_ignores_padding_and_prefers_the_trained_order(
    checkpoint: Path, embedder: LocalEmbedder
) -> None:
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder)
    moves = InverterMoves(inverter.text_model, inverter.seed)
    text = TEXTS[0]
    backwards = " ".join(reversed(text.split()))
    target = embedder.embed_sync([text])
    alone = moves.fluency([text], target)
    together = moves.fluency([text, backwards, "a"], np.repeat(target, 3, axis=0))
    assert alone[0] == pytest.approx(together[0], abs=1e-5)  # the longer rows change nothing
    assert together[0] > together[1]  # the text as trained, not its words reversed


def test_fluency_trades_cosine_for_readability(checkpoint: Path, embedder: LocalEmbedder) -> None:
    """With a fluency weight the refinement keeps texts the inverter finds likely for the
    target; one pass still ranks by cosine alone, and the prompt leads the candidates."""
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, candidates=3)
    target = embedder.embed_sync(["rate limits protect the server from overload"])[0]
    plain = inverter.invert(target, steps=3, edits=8)
    fluent = inverter.invert(target, steps=3, edits=8, fluency=1.0)
    assert fluent.trace[0] == pytest.approx(plain.trace[0])
    assert fluent.candidates[0] == (fluent.prompt, pytest.approx(fluent.cosine))

    def fluency(text: str) -> float:
        return InverterMoves(inverter.text_model, inverter.seed).fluency([text], target[None])[0]

    assert fluency(fluent.prompt) > fluency(plain.prompt)
    for weight in (-0.1, float("inf"), float("nan")):
        with pytest.raises(InputError, match="fluency"):
            inverter.invert(target, steps=1, fluency=weight)


def test_eval_defaults_to_the_settings_checkpoint_and_steps(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embed2prompt.commands.evaluate import run_eval
    from embed2prompt.settings import Settings

    settings = Settings(model_path=str(checkpoint), refinement_steps=1)

    def rows_with(settings: Settings) -> list[dict[str, Any]]:
        run_eval(
            model=None,
            corpus=Path("unused: no in-domain set"),
            samples=0,
            steps=None,
            sets=["out-of-domain"],
            readability=False,
            as_json=True,
            settings=settings,
        )
        rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
        return rows

    rows = rows_with(settings)
    assert [row["steps"] for row in rows] == [0, 1]
    # The tiny checkpoint's own search, not the default inverter's (24 token edits).
    assert {row["token_edits"] for row in rows} == {0}
    # With invert at one pass, one pass is scored once.
    one_pass = rows_with(settings.model_copy(update={"refinement_steps": 0}))
    assert [row["steps"] for row in one_pass] == [0]
    # The settings' other choices of search apply as they do to invert.
    chosen = {"refinement_beam": 2, "refinement_edits": 5, "retrieval_neighbours": 0}
    (refined,) = [row for row in rows_with(settings.model_copy(update=chosen)) if row["steps"]]
    assert (refined["beam"], refined["edits"], refined["neighbours"]) == (2, 5, 0)

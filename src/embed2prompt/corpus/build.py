"""Assembling the corpus: fetch, extract, clean, deduplicate, split, write.

Output folder::

    train.txt  val.txt  test.txt   one text a line
    manifest.json                  counts per source and split, and how they were made

Splits are decided by a hash of the normalised text, so the same text (up to case and
punctuation) can only ever land in one split: deduplication and the split together rule
out leakage between train and test, also across rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from embed2prompt.corpus.sources import SOURCES, Source
from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.model_paths import default_cache_dir

MIN_WORDS = 3
MAX_WORDS = 32
MAX_CHARS = 220
SPLIT_PER_MILLE = {"test": 10, "val": 10}  # the rest is train
PACKAGE_CACHE_FOLDER = "debian"  # in the cache folder: the Debian packages fetched

_WORD = re.compile(r"[A-Za-z]+")
_NORMAL = re.compile(r"[^a-z0-9]+")


@dataclass
class CorpusStats:
    """What the build kept and dropped, written to manifest.json."""

    extracted: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    splits: Counter[str] = field(default_factory=Counter)


def clean(text: str) -> str | None:
    """The text tidied up, or None if it is not a usable English sentence."""
    text = " ".join(text.split()).strip(" -*#>|")
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or len(text) > MAX_CHARS:
        return None
    letters = sum(len(word) for word in _WORD.findall(text))
    if letters < 0.6 * len(text.replace(" ", "")):
        return None  # code, tables, numbers
    if "http" in text or "www." in text or "@" in text:
        return None
    return text


def normalised(text: str) -> str:
    return _NORMAL.sub(" ", text.lower()).strip()


def split_of(text: str) -> str:
    bucket = int(hashlib.sha256(normalised(text).encode()).hexdigest()[:8], 16) % 1000
    threshold = 0
    for name, share in SPLIT_PER_MILLE.items():
        threshold += share
        if bucket < threshold:
            return name
    return "train"


def fetch_packages(packages: Iterable[str], cache: Path | None = None) -> Path:
    """Download and unpack Debian packages into ``cache/root`` (default: the cache
    folder's ``debian``); returns that root."""
    cache = cache or default_cache_dir() / PACKAGE_CACHE_FOLDER
    root = cache / "root"
    root.mkdir(parents=True, exist_ok=True)
    for package in packages:
        marker = cache / f"{package}.unpacked"
        if marker.exists():
            continue
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            raise ConfigurationError(
                f"fetching the Debian package {package!r} needs apt-get and dpkg "
                "(a Debian or Ubuntu machine); copy an unpacked corpus root instead"
            )
        with tempfile.TemporaryDirectory() as download:
            result = subprocess.run(
                ["apt-get", "download", package],
                cwd=download,
                capture_output=True,
                text=True,
                check=False,
            )
            debs = list(Path(download).glob("*.deb"))
            if result.returncode != 0 or not debs:
                raise ConfigurationError(
                    f"apt-get download {package} failed: {result.stderr.strip()[-300:]} "
                    "(run apt-get update once first)"
                )
            for deb in debs:
                subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        marker.touch()
    return root


def extract(sources: Iterable[Source], root: Path, stats: CorpusStats) -> Iterator[tuple[str, str]]:
    """(source name, cleaned text) for every usable text of every source."""
    for source in sources:
        for raw in source.extract(root):
            stats.extracted[source.name] += 1
            text = clean(raw)
            if text is not None:
                yield source.name, text


def build_corpus(
    out: Path,
    *,
    source_names: Iterable[str] | None = None,
    extra_texts: Iterable[tuple[str, str]] = (),
    cache: Path | None = None,
    root: Path | None = None,
) -> CorpusStats:
    """Build the corpus into ``out``. ``extra_texts`` are (source name, text) pairs, such
    as synthetic prompts; the packages are fetched into ``cache`` (default: the cache
    folder's ``debian``); ``root`` skips fetching and reads an unpacked tree instead."""
    names = list(source_names or SOURCES)
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise ConfigurationError(
            f"unknown corpus sources {unknown}; expected some of: {', '.join(SOURCES)}"
        )
    chosen = [SOURCES[name] for name in names]
    if root is None:
        packages = [package for source in chosen for package in source.packages]
        root = fetch_packages(packages, cache)
    stats = CorpusStats()
    seen: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        name: (out / f"{name}.txt").open("w", encoding="utf-8") for name in ("train", "val", "test")
    }
    try:
        for name, text in _chain(extract(chosen, root, stats), extra_texts, stats):
            key = normalised(text)
            if key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)
            split = split_of(text)
            files[split].write(text + "\n")
            stats.kept[name] += 1
            stats.splits[split] += 1
    finally:
        for handle in files.values():
            handle.close()
    manifest = {
        "sources": {
            name: {
                "packages": list(SOURCES[name].packages) if name in SOURCES else [],
                "licence": SOURCES[name].licence if name in SOURCES else "generated",
                "extracted": stats.extracted[name],
                "kept": stats.kept[name],
            }
            for name in sorted(set(stats.extracted) | set(stats.kept))
        },
        "duplicates_dropped": stats.duplicates,
        "splits": dict(stats.splits),
        "rules": {
            "words": [MIN_WORDS, MAX_WORDS],
            "max_chars": MAX_CHARS,
            "split": "sha256 of the lower-cased alphanumeric text; 1% test, 1% val",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return stats


def _chain(
    texts: Iterator[tuple[str, str]], extra: Iterable[tuple[str, str]], stats: CorpusStats
) -> Iterator[tuple[str, str]]:
    """The sources' cleaned texts, then the extra texts, counted and cleaned likewise."""
    yield from texts
    for name, raw in extra:
        stats.extracted[name] += 1
        text = clean(raw)
        if text is not None:
            yield name, text

"""Where the training text comes from: Debian packages whose licences allow it.

Each source names its packages and an extractor that yields candidate texts from the
unpacked files. Packages are fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into a cache folder, so nothing is installed system-wide and no root is needed.
"""

from __future__ import annotations

import gzip
import html.parser
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from embed2prompt.errors import ConfigurationError


@dataclass(frozen=True)
class Source:
    """A kind of text: the packages that carry it and how to read it."""

    name: str
    packages: tuple[str, ...]
    licence: str
    extract: Callable[[Path], Iterator[str]]
    description: str


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_WHITESPACE = re.compile(r"\s+")


def sentences(text: str) -> Iterator[str]:
    """Split running text into sentences (good enough for prose, not for abbreviations)."""
    for sentence in _SENTENCE_END.split(_WHITESPACE.sub(" ", text).strip()):
        if sentence:
            yield sentence


def _wordnet(root: Path) -> Iterator[str]:
    """Example sentences (the quoted parts) and glosses (text before the first ``; "``)."""
    for part in ("noun", "verb", "adj", "adv"):
        path = root / "usr/share/wordnet" / f"data.{part}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header
            gloss = line.split("|", 1)[1].strip()
            definition = gloss.split('; "', 1)[0].strip().rstrip(";")
            if definition:
                yield definition[0].upper() + definition[1:] + "."
            yield from (example.strip() for example in re.findall(r'"([^"]+)"', gloss))


# A noun sense tagged at least this often in WordNet's semantically tagged texts is one
# people write about ("steam turbine", "bankruptcy"); the untagged are mostly rare terms.
_COMMON_NOUN_TAGS = 1


def wordnet_topics(root: Path) -> list[str]:
    """Common English nouns and noun phrases from WordNet's noun index (under ``root``, an
    unpacked ``wordnet-base``): the topics of synthetic prompts about everything people
    ask about, not only a hand-written list. About 11,800, in the index's order."""
    path = root / "usr/share/wordnet/index.noun"
    if not path.is_file():
        raise ConfigurationError(
            f"WordNet's noun index {path} is missing; expected an unpacked wordnet-base"
        )
    topics = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        # lemma pos synset_cnt p_cnt [pointers] sense_cnt tagsense_cnt synset_offsets...
        fields = line.split()
        tagged = int(fields[5 + int(fields[3])])
        if tagged >= _COMMON_NOUN_TAGS:
            topics.append(fields[0].replace("_", " "))
    return topics


def _fortunes(root: Path) -> Iterator[str]:
    folder = root / "usr/share/games/fortunes"
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.suffix or not path.is_file() or "art" in path.name:
            continue  # .dat/.u8 indexes, and ascii art
        for passage in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line for line in passage.splitlines() if not line.strip().startswith("--")]
            yield from sentences(" ".join(lines))


class _ParagraphText(html.parser.HTMLParser):
    """The text of <p> and <li> elements, leaving code, tables and navigation out."""

    _KEEP: ClassVar[set[str]] = {"p", "li", "dd"}
    # Inline <code> stays: "raises a ValueError" needs its ValueError.
    _SKIP: ClassVar[set[str]] = {"pre", "script", "style", "table", "nav"}

    def __init__(self) -> None:
        super().__init__()
        self.paragraphs: list[str] = []
        self._parts: list[str] = []
        self._keep = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._KEEP:
            self._flush()
            self._keep += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._KEEP:
            self._flush()
            self._keep = max(0, self._keep - 1)

    def handle_data(self, data: str) -> None:
        if self._keep and not self._skip:
            self._parts.append(data)

    def _flush(self) -> None:
        if self._parts:
            self.paragraphs.append("".join(self._parts))
            self._parts = []


def _html_prose(folders: tuple[str, ...]) -> Callable[[Path], Iterator[str]]:
    def extract(root: Path) -> Iterator[str]:
        for folder in folders:
            for path in sorted((root / folder).rglob("*.htm*")):
                opener = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                    parser = _ParagraphText()
                    parser.feed(handle.read())
                for paragraph in parser.paragraphs:
                    yield from sentences(paragraph)

    return extract


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "wordnet",
            ("wordnet-base",),
            "WordNet 3.0 licence (permissive)",
            _wordnet,
            "definitions and example sentences of English words",
        ),
        Source(
            "fortunes",
            ("fortunes", "fortunes-min"),
            "BSD",
            _fortunes,
            "quotations, jokes and aphorisms",
        ),
        Source(
            "python-docs",
            ("python3.11-doc",),
            "PSF licence",
            _html_prose(("usr/share/doc/python3.11/html",)),
            "modern technical prose: the Python documentation",
        ),
        Source(
            "debian-reference",
            ("debian-reference-en",),
            "GPL-2+",
            _html_prose(("usr/share/debian-reference",)),
            "system administration prose",
        ),
        Source(
            "jargon",
            ("jargon-text",),
            "public domain",
            _html_prose(("usr/share/doc/jargon-text",)),
            "the Jargon File: hacker culture and computing",
        ),
    )
}

"""Retrieval: the training texts nearest to a target, as extra first guesses.

An inverter trained for hours on two cores writes a first guess at cosine 0.6-0.8; the
training text nearest to the target is often closer (docs/development-log.md, "What
changed in the second session"), and from a closer start the embedder-guided search ends
higher. The training run has embedded every one of its texts anyway, so it keeps them
beside the checkpoint as a *prompt bank* (``NAME.bank.npz``).

The bank is small enough to ship with the default model: each embedding is stored as one
bit a dimension, the sign of its offset from the bank's centre (48 bytes for 384
dimensions). Scoring a target against those signs (an asymmetric, full-precision query)
ranks the texts nearly as their full vectors would (on the small decoder's bank, the best
4 among the top 32 by code average a cosine of 0.6077 against 0.6078 for the exact best
4): the few best by code are handed to the search, which embeds them and keeps them on
their true cosine.

Scoring every code against the full query means unpacking the whole bank, 0.6 s a call.
Instead the target's own signs are compared with the codes 64 bits at a time (XOR and a
population count: the Hamming distance, 2 ms for 150,000 texts), and only the nearest few
hundred are unpacked and scored in full. On 192 test and out-of-domain targets this
returned exactly the texts the full scoring did (recall of the best 8: 1.0).
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import ConfigurationError

log = logging.getLogger(__name__)

BANK_SUFFIX = ".bank.npz"
_FORMAT_VERSION = 1
# Texts kept by the Hamming distance for full scoring: at least this many, and 32 for
# each text asked for (256 kept every one of the full scoring's best 8 in the test above).
_SHORTLIST = 256
_SHORTLIST_PER_TEXT = 32

Vectors = npt.NDArray[np.float32]


def bank_path(checkpoint: Path) -> Path:
    """Where a checkpoint's prompt bank lives: ``NAME.bank.npz`` beside ``NAME.pt``."""
    return checkpoint.with_suffix(BANK_SUFFIX)


@dataclass(frozen=True)
class PromptBank:
    """Texts and one-bit codes of their embeddings, for finding texts near a target."""

    embedder_name: str
    dimension: int
    centre: Vectors  # (d,) the mean embedding, which the codes' signs are taken from
    codes: npt.NDArray[np.uint8]  # (n, ceil(d / 8)) packed sign bits
    texts: list[str]
    # The codes as 64-bit words, one row per word position (w, n): XOR and a population
    # count over contiguous rows is what makes the Hamming distance fast.
    _words: npt.NDArray[np.uint64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = np.ascontiguousarray(_packed_words(self.codes, packed=True).T)
        object.__setattr__(self, "_words", words)

    @classmethod
    def build(cls, embedder_name: str, texts: Sequence[str], vectors: Vectors) -> PromptBank:
        """A bank of ``texts`` (each once) from their embeddings, ``vectors`` (n, d)."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} embeddings")
        first: dict[str, int] = {}
        for index, text in enumerate(texts):
            line = " ".join(text.split())  # one line each, each text once, none empty
            if line:
                first.setdefault(line, index)
        if not first:
            raise ValueError("a prompt bank needs at least one text")
        rows = np.fromiter(first.values(), dtype=np.int64)
        kept = np.asarray(vectors, dtype=np.float32)[rows]
        centre = kept.mean(axis=0).astype(np.float32)
        codes = np.packbits(kept > centre, axis=1)
        return cls(embedder_name, kept.shape[1], centre, codes, list(first))

    def extended(self, texts: Sequence[str], vectors: Vectors) -> tuple[PromptBank, int]:
        """This bank with ``texts`` (embedded as ``vectors``, (n, d)) added, and how many
        of them were new. Their codes are signs against this bank's centre, so the texts
        already in it keep theirs: the centre is a reference point, not a statistic to
        keep up to date."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} embeddings")
        if np.asarray(vectors).shape[1:] != (self.dimension,):
            raise ValueError(
                f"embeddings of shape {np.asarray(vectors).shape} for a bank of "
                f"{self.dimension} dimensions"
            )
        known = set(self.texts)
        rows: dict[str, int] = {}
        for index, text in enumerate(texts):
            line = " ".join(text.split())
            if line and line not in known:
                rows.setdefault(line, index)
        if not rows:
            return self, 0
        added = np.asarray(vectors, dtype=np.float32)[list(rows.values())]
        codes = np.concatenate([self.codes, np.packbits(added > self.centre, axis=1)])
        bank = PromptBank(
            self.embedder_name, self.dimension, self.centre, codes, [*self.texts, *rows]
        )
        return bank, len(rows)

    def save(self, path: Path) -> None:
        """Write the bank atomically (a reader never sees half a file)."""
        joined = "\n".join(self.texts).encode("utf-8")
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            temporary,
            format_version=np.array(_FORMAT_VERSION),
            embedder=np.array(self.embedder_name),
            dimension=np.array(self.dimension),
            centre=self.centre,
            codes=self.codes,
            texts=np.frombuffer(joined, dtype=np.uint8),
        )
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> PromptBank:
        try:
            with np.load(path, allow_pickle=False) as stored:
                if int(stored["format_version"]) != _FORMAT_VERSION:
                    raise ConfigurationError(
                        f"{path} is a prompt bank of format {int(stored['format_version'])}; "
                        f"this version reads format {_FORMAT_VERSION}"
                    )
                texts = stored["texts"].tobytes().decode("utf-8").split("\n")
                bank = cls(
                    str(stored["embedder"]),
                    int(stored["dimension"]),
                    stored["centre"].astype(np.float32),
                    stored["codes"],
                    texts,
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as error:
            raise ConfigurationError(f"{path} is not a readable prompt bank ({error})") from None
        expected_bytes = (bank.dimension + 7) // 8
        if bank.codes.shape != (len(texts), expected_bytes) or bank.centre.shape != (
            bank.dimension,
        ):
            raise ConfigurationError(
                f"{path} is damaged: {len(texts)} texts, codes of shape {bank.codes.shape}, "
                f"centre of shape {bank.centre.shape} for {bank.dimension} dimensions"
            )
        return bank

    def __len__(self) -> int:
        return len(self.texts)

    def nearest(self, targets: Vectors, count: int) -> list[list[str]]:
        """For each target (rows of unit vectors), the ``count`` texts whose codes score
        highest against it, best first."""
        count = min(count, len(self.texts))
        queries = np.asarray(targets, dtype=np.float32) - self.centre
        if count <= 0:
            return [[] for _ in queries]
        words = self._words
        query_words = _packed_words(queries > 0)
        shortlist = min(len(self.texts), max(_SHORTLIST, _SHORTLIST_PER_TEXT * count))
        found = []
        for query, query_bits in zip(queries, query_words, strict=True):
            distances = np.bitwise_count(words[0] ^ query_bits[0]).astype(np.int32)
            for column, bits in zip(words[1:], query_bits[1:], strict=True):
                distances += np.bitwise_count(column ^ bits)
            rows = (
                np.argpartition(distances, shortlist - 1)[:shortlist]
                if shortlist < len(distances)
                else np.arange(len(distances))
            )
            signs = np.unpackbits(self.codes[rows], axis=1)[:, : self.dimension]
            scores = (signs.astype(np.float32) * 2.0 - 1.0) @ query
            best = rows[np.argsort(-scores, kind="stable")[:count]]
            found.append([self.texts[row] for row in best.tolist()])
        return found


def _packed_words(
    bits: npt.NDArray[np.bool_] | npt.NDArray[np.uint8], *, packed: bool = False
) -> npt.NDArray[np.uint64]:
    """Rows of sign bits (or, with ``packed``, of bytes already packed) as 64-bit words,
    zero-padded: a padding bit is 0 in both the target's and the codes' words, so it never
    adds to a distance."""
    rows = np.asarray(bits) if packed else np.packbits(bits, axis=1)
    padding = -rows.shape[1] % 8
    rows = np.pad(rows, ((0, 0), (0, padding)))
    return np.ascontiguousarray(rows).view(np.uint64)


def load_bank_for(checkpoint: Path, embedder_name: str, dimension: int) -> PromptBank | None:
    """The checkpoint's prompt bank, or None when it has none or one made with another
    embedder (a bank of another embedder's vectors would rank texts at random)."""
    path = bank_path(checkpoint)
    if not path.is_file():
        return None
    bank = PromptBank.load(path)
    if bank.embedder_name != embedder_name or bank.dimension != dimension:
        log.warning(
            "ignoring %s: it was built with %s (%d dimensions), not %s (%d)",
            path,
            bank.embedder_name,
            bank.dimension,
            embedder_name,
            dimension,
        )
        return None
    return bank

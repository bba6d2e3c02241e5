"""The search's word lexicon with its embeddings, embedded once and cached on disk.

Embedding 20,000 words takes about 20 s that every run would otherwise pay again. The
cache holds int8 codes and a scale a row (a quarter of float32's size: the words are only
ranked by their dot product with a residual) and a key of the embedder and the words, so
a cache made for other words or by another embedder is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder
from embed2prompt.inversion.lexical_search import Lexicon

Vectors = npt.NDArray[np.float32]


async def cached_lexicon(words: Sequence[str], embedder: Embedder, cache: Path) -> Lexicon:
    """``words`` (each once) with their embeddings, from ``cache`` when it was made for
    these words by this embedder, else embedded and written there."""
    unique = list(dict.fromkeys(words))
    key = hashlib.sha256("\n".join([embedder.name, *unique]).encode()).hexdigest()
    vectors = _read(cache, key, len(unique))
    if vectors is None:
        codes, scales = _quantise(await embedder.embed(unique))
        _write(cache, key, codes, scales)
        # Rounded as the cache stores them: the first run searches as later ones do.
        vectors = _dequantise(codes, scales)
    return Lexicon(unique, vectors)


def _read(path: Path, key: str, count: int) -> Vectors | None:
    """The cached word vectors, if the cache is for these words and this embedder."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) != key or cached["codes"].shape[0] != count:
                return None
            return _dequantise(cached["codes"], cached["scales"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None


def _write(path: Path, key: str, codes: npt.NDArray[np.int8], scales: Vectors) -> None:
    """Written beside, then moved in: a reader never sees half a file."""
    try:
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(temporary, key=np.array(key), codes=codes, scales=scales)
        temporary.replace(path)
    except OSError:
        pass  # a read-only folder: embed the lexicon again next time


def _quantise(vectors: Vectors) -> tuple[npt.NDArray[np.int8], Vectors]:
    """int8 codes and a scale a row."""
    scales = (np.abs(vectors).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
    scales[scales == 0] = 1.0
    codes = np.round(vectors / scales).astype(np.int8)
    return codes, scales


def _dequantise(codes: npt.NDArray[np.int8], scales: Vectors) -> Vectors:
    vectors: Vectors = codes.astype(np.float32) * scales.astype(np.float32)
    return vectors

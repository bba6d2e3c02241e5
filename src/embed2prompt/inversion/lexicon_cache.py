"""The search's word lexicon with its embeddings, embedded once and kept on disk.

Embedding 20,000 words takes about 20 s that every run would otherwise pay again. The
embeddings are kept as int8 codes and a scale a row (a quarter of float32's size: the
words are only ranked by their dot product with a residual) with a key of the embedder
and the words, and are looked for in two places:

- the checkpoint's shipped lexicon, ``NAME.lexicon.npz`` beside it, made by the
  checkpoint's own embedder and shipped with it so that a fresh clone does not embed the
  words again. It is read when its key matches, and never written: the models folder is
  the repository's, and does not change at run time;
- the cache folder (``EMBED2PROMPT_CACHE_DIR``, :func:`~embed2prompt.inversion.
  model_paths.default_cache_dir`), one file per embedder (name and dimension) and word
  list, so two processes with different embedders never overwrite each other's.

A file made for other words or by another embedder, or a damaged one, is ignored: the
words are embedded again and the cache file replaced, atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder
from embed2prompt.inversion.lexical_search import Lexicon

__all__ = ["LEXICON_FOLDER", "cached_lexicon", "lexicon_cache_path", "shipped_lexicon_path"]

LEXICON_FOLDER = "lexicons"  # in the cache folder
_WORDS_A_CALL = 1024

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


async def cached_lexicon(
    words: Sequence[str], embedder: Embedder, *, cache_dir: Path, shipped: Path | None = None
) -> Lexicon:
    """``words`` (each once) with their ``embedder`` embeddings: from ``shipped`` (read
    only) or from ``cache_dir`` when either was made for these words by this embedder,
    else embedded and written to ``cache_dir``."""
    unique = list(dict.fromkeys(words))
    key = _key(embedder.name, unique)
    shape = (len(unique), embedder.dimension)
    cache = lexicon_cache_path(cache_dir, embedder.name, embedder.dimension, key)
    for path in (shipped, cache):
        if path is not None and (vectors := _read(path, key, shape)) is not None:
            return Lexicon(unique, vectors)
    # One request's worth after another: a slow embeddings server sent every word at
    # once queues requests past their timeout, and retrying them slows it further.
    chunks = [unique[i : i + _WORDS_A_CALL] for i in range(0, len(unique), _WORDS_A_CALL)]
    embedded = [await embedder.embed(chunk) for chunk in chunks]
    codes, scales = _quantise(np.concatenate(embedded) if embedded else np.zeros(shape, np.float32))
    _write(cache, key, codes, scales)
    # Rounded as the cache stores them: the first run searches as later ones do.
    return Lexicon(unique, _dequantise(codes, scales))


def shipped_lexicon_path(model_path: Path) -> Path:
    """Where a checkpoint's shipped lexicon lies: ``NAME.lexicon.npz`` beside it."""
    return model_path.with_suffix(".lexicon.npz")


def lexicon_cache_path(cache_dir: Path, embedder_name: str, dimension: int, key: str) -> Path:
    """The cache file of one embedder and word list (``key``): the name is for people
    reading the folder; the key inside the file is what is checked."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_name).strip("._") or "embedder"
    return cache_dir / LEXICON_FOLDER / f"{slug}-{dimension}d-{key[:16]}.npz"


def _key(embedder_name: str, words: Sequence[str]) -> str:
    # The shipped files carry this key: changing it makes every clone embed again.
    return hashlib.sha256("\n".join([embedder_name, *words]).encode()).hexdigest()


def _read(path: Path, key: str, shape: tuple[int, int]) -> Vectors | None:
    """The stored word vectors, if the file is for these words (the key) and this
    embedder's dimension (the shape); ``None`` for a missing, foreign or damaged file."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            codes, scales = stored["codes"], stored["scales"]
            if (
                str(stored["key"]) != key
                or codes.shape != shape
                or codes.dtype != np.int8
                or scales.shape != (shape[0], 1)
            ):
                return None
            return _dequantise(codes, scales)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None


def _write(path: Path, key: str, codes: npt.NDArray[np.int8], scales: Vectors) -> None:
    """Written to a file of its own beside ``path``, then moved in: a reader never sees
    half a file, and two processes writing the same cache never mix their writes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as error:
        _cannot_write(path, error)
        return
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, key=np.array(key), codes=codes, scales=scales)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        _cannot_write(path, error)


def _cannot_write(path: Path, error: OSError) -> None:
    # The run goes on with the embeddings in memory; only the next run pays for them again.
    log.warning(
        "could not cache the lexicon's embeddings in %s (%s); set EMBED2PROMPT_CACHE_DIR "
        "to a writable folder, or the next run embeds them again",
        path.parent,
        error.strerror or error,
    )


def _quantise(vectors: Vectors) -> tuple[npt.NDArray[np.int8], Vectors]:
    """int8 codes and a scale a row."""
    scales = (np.abs(vectors).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
    scales[scales == 0] = 1.0
    codes = np.round(vectors / scales).astype(np.int8)
    return codes, scales


def _dequantise(codes: npt.NDArray[np.int8], scales: Vectors) -> Vectors:
    vectors: Vectors = codes.astype(np.float32) * scales.astype(np.float32)
    return vectors

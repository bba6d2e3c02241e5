"""Checks of what users hand us, with errors that name the bad item and what was expected.

Every layer (library, pipeline, batch runs, service) checks texts and embeddings here,
so that the same mistake reads the same wherever it is made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import InputError

# What a wrong dimension most often means: vectors of another embedder.
ALIGN_HINT = (
    "vectors of another embedder can be inverted through an aligner fitted on paired texts "
    "(see `embed2prompt align --help`)"
)


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or an :class:`InputError` naming the first bad one."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise InputError("texts is empty; expected at least one string to embed")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{index}] is {type(text).__name__}; expected a string")
        if not text.strip():
            raise InputError(f"texts[{index}] is empty; expected non-blank text")
    return list(texts)


def check_embeddings(
    raw: object, dimension: int, *, first_index: int = 0, expected: str | None = None
) -> npt.NDArray[np.float32]:
    """(n, d) unit rows, or an :class:`InputError` naming the row and the problem.

    ``first_index`` is the index of ``raw``'s first row in the caller's numbering (a
    chunk of a streamed upload), so that errors name the row the caller knows; one
    vector (a 1-D ``raw``) is "the embedding". ``expected`` says who expects
    ``dimension`` (an aligner); by default the model.
    """
    # Without an aligner, a wrong dimension most often means another embedder's vectors.
    expected = expected or f"this model inverts {dimension}-dimensional embeddings; {ALIGN_HINT}"
    if isinstance(raw, list | tuple) and raw and isinstance(raw[0], list | tuple | np.ndarray):
        _check_rows(raw, dimension, first_index, expected)  # name the row that is not numbers
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("embeddings must be numbers: a vector or a list of vectors") from None
    if array.size == 0:
        raise InputError("embeddings are empty; expected a non-empty list of vectors")
    one_vector = array.ndim == 1
    if one_vector:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InputError(
            f"embeddings must be a vector or a non-empty list of vectors, got shape {array.shape}"
        )
    if array.shape[1] != dimension:
        raise InputError(f"embeddings have dimension {array.shape[1]}, but {expected}")
    for index, row in enumerate(array, start=first_index):
        name = "the embedding" if one_vector else f"embedding {index}"
        if not np.isfinite(row).all():
            raise InputError(f"{name} contains NaN or infinite values")
        if not np.any(row):
            raise InputError(f"{name} is all zeros; it has no direction to invert")
        _check_values(row, name)
    # Each row divided by its largest magnitude first: the same direction, and a length
    # that can neither overflow (values up to 3.4e38) nor underflow (values near 1e-300).
    scaled = array / np.abs(array).max(axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    return unit.astype(np.float32)


# The values an embedding may hold: 0, or a normal float64 within float32's range. No
# embedding model writes a denormal (subnormal) number or one beyond float32, and both
# are how a caller's bug looks (uninitialised memory, a wrong unit).
SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)  # 2.2250738585072014e-308
LARGEST = float(np.finfo(np.float32).max)  # 3.4028234663852886e38


def _check_values(row: npt.NDArray[np.float64], name: str) -> None:
    magnitude = np.abs(row)
    denormal = (magnitude > 0) & (magnitude < SMALLEST_NORMAL)
    if denormal.any():
        raise InputError(
            f"{name} contains a denormal number ({magnitude[denormal].min():.3g}, "
            f"smaller in magnitude than {SMALLEST_NORMAL:.3g}); send 0 or a normal float"
        )
    if (largest := magnitude.max()) > LARGEST:
        raise InputError(
            f"{name} contains {largest:.3g}, beyond float32's range (at most "
            f"{LARGEST:.3g} in magnitude); no embedding holds such a value"
        )


def _check_rows(
    rows: list[object] | tuple[object, ...], dimension: int, first_index: int, expected: str
) -> None:
    for index, row in enumerate(rows, start=first_index):
        try:
            vector = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"embedding {index} is not a list of numbers") from None
        if vector.ndim != 1 or vector.shape[0] != dimension:
            raise InputError(f"embedding {index} has shape {vector.shape}, but {expected}")

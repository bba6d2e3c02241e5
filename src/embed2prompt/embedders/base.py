"""What every embedder is: texts in, an (n, d) float32 array of unit rows out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import InputError

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows, one per text, in input order.

    ``name`` identifies the embedding space (vectors from different names are not
    comparable); ``dimension`` is the row length ``d``.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; raises :class:`InputError` for empty or non-text input."""
        ...

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Which texts are longer than the model's window and were cut to fit."""
        ...

    async def aclose(self) -> None:
        """Release threads, sessions and connections."""
        ...


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


def normalise_rows(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Scale each row to unit length (zero rows stay zero)."""
    rows: Vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = np.zeros_like(rows)
    np.divide(rows, norms, out=out, where=norms > 0)
    return out

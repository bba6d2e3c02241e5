"""What every embedder is: texts in, an (n, d) float32 array of unit rows out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from embed2prompt.inputs import check_texts

__all__ = ["Embedder", "Vectors", "check_texts", "normalise_rows"]

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


def normalise_rows(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Scale each row to unit length (zero rows stay zero)."""
    rows: Vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = np.zeros_like(rows)
    np.divide(rows, norms, out=out, where=norms > 0)
    return out

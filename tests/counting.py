"""A real embedder that counts the texts it is asked to embed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder


class CountingEmbedder:
    """``inner`` itself (same name, dimension and vectors), counting the texts embedded."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts += len(texts)
        return await self.inner.embed(texts)

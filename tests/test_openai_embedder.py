"""The OpenAI embedder against the local test server, its limits and its 429s."""

from __future__ import annotations

import numpy as np
import pytest

from embed2prompt import Settings
from embed2prompt.backends import create_embedder
from embed2prompt.embedders.base import Embedder
from embed2prompt.embedders.openai import (
    MAX_INPUTS_PER_REQUEST,
    MAX_TOKENS_PER_INPUT,
    OpenAIEmbedder,
    _pack,
)
from embed2prompt.testing import OpenAITestServer


def openai_settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"embedder": "openai", **changes})


async def test_embeds_in_order_with_unit_rows(settings: Settings) -> None:
    embedder = create_embedder(openai_settings(settings))
    try:
        assert isinstance(embedder, Embedder)
        vectors = await embedder.embed(["alpha", "beta", "alpha"])
    finally:
        await embedder.aclose()
    assert vectors.shape == (3, 1536)
    assert embedder.dimension == 1536
    assert embedder.name == "openai:text-embedding-3-small"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])


async def test_dimensions_and_other_models(settings: Settings) -> None:
    embedder = create_embedder(openai_settings(settings, embedding_dimensions=64))
    large = create_embedder(openai_settings(settings, embedding_model="text-embedding-3-large"))
    try:
        assert (await embedder.embed(["x"])).shape == (1, 64)
        assert embedder.name == "openai:text-embedding-3-small@64"
        assert (await large.embed(["x"])).shape == (1, 3072)
    finally:
        await embedder.aclose()
        await large.aclose()


async def test_server_429s_are_retried_under_the_limiter(
    server: OpenAITestServer, settings: Settings
) -> None:
    server.configure(rpm=120, limit_window_s=1)  # two requests a second, burst of two
    limits = openai_settings(settings, requests_per_minute=6_000)  # a client far too eager
    embedder = create_embedder(limits)
    assert isinstance(embedder, OpenAIEmbedder)
    try:
        import asyncio

        results = await asyncio.gather(*(embedder.embed([f"text {i}"]) for i in range(6)))
    finally:
        await embedder.aclose()
    assert all(result.shape == (1, 1536) for result in results)
    outcomes = server.stats()["outcomes"]
    assert outcomes["ok"] == 6
    assert outcomes.get("429_limit", 0) >= 1


async def test_many_texts_are_packed_into_few_requests(
    server: OpenAITestServer, settings: Settings
) -> None:
    embedder = create_embedder(openai_settings(settings))
    try:
        vectors = await embedder.embed([f"t{i}" for i in range(MAX_INPUTS_PER_REQUEST + 5)])
    finally:
        await embedder.aclose()
    assert vectors.shape[0] == MAX_INPUTS_PER_REQUEST + 5
    assert server.stats()["outcomes"]["ok"] == 2


def test_packing_respects_inputs_and_tokens() -> None:
    assert _pack([1] * 5000, 300_000) == [
        list(range(2048)),
        list(range(2048, 4096)),
        list(range(4096, 5000)),
    ]
    assert _pack([100, 100, 100, 100], 250) == [[0, 1], [2, 3]]
    assert _pack([500], 250) == [[0]]  # one input over the cap still gets its request


async def test_too_long_texts_are_cut_and_flagged(
    server: OpenAITestServer, settings: Settings
) -> None:
    embedder = create_embedder(openai_settings(settings))
    long_text = "token " * (MAX_TOKENS_PER_INPUT + 100)
    try:
        assert embedder.truncated([long_text, "short"]) == [True, False]
        await embedder.embed([long_text])
    finally:
        await embedder.aclose()
    sent = server.stats()["arrivals"][0]["tokens"]
    assert sent == MAX_TOKENS_PER_INPUT


def test_dimension_of_an_unknown_model_is_known_after_first_use(settings: Settings) -> None:
    embedder = create_embedder(openai_settings(settings, embedding_model="my-local-embedder"))
    with pytest.raises(Exception, match="known only after the first embedding"):
        _ = embedder.dimension

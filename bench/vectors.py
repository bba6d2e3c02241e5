"""The input file of the benchmarks that time ``embed2prompt invert`` on many rows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.local import LocalEmbedder

SAMPLE_PROMPTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "Explain how a hash table works.",
    "What is the capital of France?",
    "Summarise the meeting notes in three bullet points.",
    "Translate good morning into Spanish.",
    "List three ways to speed up a Python loop.",
    "Why is the sky blue?",
]


def sample_vectors(rows: int) -> npt.NDArray[np.float32]:
    """``rows`` embeddings (all-MiniLM-L6-v2) of the sample prompts, taken in turn:
    real embeddings, so the inverter does its usual work on each row."""
    vectors = LocalEmbedder().embed_sync(SAMPLE_PROMPTS)
    return np.resize(vectors, (rows, vectors.shape[1])).astype(np.float32)

"""Embedders: text to unit vectors, local or behind an OpenAI-compatible API.

base      Embedder protocol and input checks
local     LocalEmbedder: all-MiniLM-L6-v2 on ONNX Runtime (the default)
openai    OpenAIEmbedder: embeddings through the rate-limited engine
batching  MicroBatcher: concurrent small requests run as one batch
"""

from embed2prompt.embedders.base import Embedder, Vectors

__all__ = ["Embedder", "Vectors"]

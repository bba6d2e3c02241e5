"""``from scripts.inference import EmbeddingToPromptInference``: the seed's import path."""

from embed2prompt.inversion.inference import EmbeddingToPromptInference

__all__ = ["EmbeddingToPromptInference"]

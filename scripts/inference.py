"""``from scripts.inference import EmbeddingToPromptInference``."""

from scripts._pending import not_available

EmbeddingToPromptInference = not_available(
    "EmbeddingToPromptInference", "the trained inversion model (issue 4)"
)

__all__ = ["EmbeddingToPromptInference"]

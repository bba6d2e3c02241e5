"""The seed's pipeline: embeddings in, evaluated prompts and variants out, in parallel.

parallel            ParallelPromptGenerator, the high-level interface
inversion_batching  concurrent items' inversions run as shared batches
quality             the seed's quality evaluation (generate, embed, cosine)
variants            refinement runners-up and feedback-guided rewrites
results             the response in the seed's JSON shape (pydantic)
"""

from embed2prompt.pipeline.parallel import ParallelPromptGenerator
from embed2prompt.pipeline.results import (
    EvaluationResult,
    PromptGenerationResponse,
    PromptResult,
    Summary,
    VariantResult,
)

__all__ = [
    "EvaluationResult",
    "ParallelPromptGenerator",
    "PromptGenerationResponse",
    "PromptResult",
    "Summary",
    "VariantResult",
]

"""Request bodies of the service, in the seed's shape (``../shared/SEED.md``).

JSON bodies are validated strictly: a number must be a JSON number (not ``"0.1"``, not
``true``), an integer a JSON integer (not ``"5"``, ``5.0`` or ``true``), a boolean
``true`` or ``false``. Coercing them hid client bugs (a list of strings passed as
vectors). The query string of ``/jobs/upload`` is text by nature, so there the same
options are parsed from their text (``max_concurrent=5``, ``evaluate_quality=false``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TierName = Literal["tier_1", "tier_2", "tier_3", "tier_4", "tier_5"]


class PipelineOptions(BaseModel):
    """How the pipeline runs: the seed's options, in a request body or a query string."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent: int = Field(default=10, ge=1, le=50, description="Items in progress at once.")
    rate_limit_tier: TierName = Field(
        default="tier_2", description="OpenAI usage tier whose limits the API backends keep."
    )
    evaluate_quality: bool = Field(
        default=True, description="Judge each prompt by what the generator writes from it."
    )
    generate_variants: bool = Field(default=False, description="Refine variants of each prompt.")
    return_metadata: bool = Field(default=True, description="Include performance metrics.")


class GeneratePromptsRequest(PipelineOptions):
    """``POST /generate_prompts_parallel``: embeddings in, evaluated prompts out."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # see the module's docstring
        json_schema_extra={
            "examples": [
                {
                    "embeddings": [[0.1, 0.2, 0.3]],
                    "max_concurrent": 10,
                    "rate_limit_tier": "tier_2",
                    "evaluate_quality": True,
                    "generate_variants": False,
                    "return_metadata": True,
                }
            ]
        },
    )

    embeddings: list[list[float]] = Field(
        min_length=1,
        description="Target vectors, each of the loaded model's dimension (384 by default): "
        "JSON numbers, finite, not all zero, neither denormal (below 2.2e-308 in magnitude) "
        "nor so large that the vector's length overflows.",
    )


class JobRequest(GeneratePromptsRequest):
    """``POST /jobs``: the same options, for up to ``max_embeddings_per_job`` embeddings."""

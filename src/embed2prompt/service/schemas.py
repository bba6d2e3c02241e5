"""Request bodies of the service, in the seed's shape (``../shared/SEED.md``).

JSON bodies are validated strictly: a number must be a JSON number (not ``"0.1"``, not
``true``), an integer a JSON number without a fraction (``5`` or ``5.0``, as JSON Schema
counts integers; not ``"5"``, ``5.5`` or ``true``), a boolean ``true`` or ``false``.
Coercing them hid client bugs (a list of strings passed as vectors). The query string
of ``/jobs/upload`` is text by nature, so there the same options are parsed from their
text (``max_concurrent=5``, ``evaluate_quality=false``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

TierName = Literal["tier_1", "tier_2", "tier_3", "tier_4", "tier_5"]


def _whole(value: object) -> object:
    """``5.0`` as ``5``: JSON Schema, and so the OpenAPI document, counts it an integer."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_whole)]
# Most refinement steps a request may ask for: 64 take about half a minute an item on
# two cores (8 take about 4 s), far past where the cosine stops rising.
MAX_REFINEMENT_STEPS = 64


class PipelineOptions(BaseModel):
    """How the pipeline runs: the seed's options, in a request body or a query string."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent: JsonInt = Field(
        default=10, ge=1, le=50, description="Items in progress at once."
    )
    rate_limit_tier: TierName = Field(
        default="tier_2", description="OpenAI usage tier whose limits the API backends keep."
    )
    evaluate_quality: bool = Field(
        default=True, description="Judge each prompt by what the generator writes from it."
    )
    generate_variants: bool = Field(default=False, description="Refine variants of each prompt.")
    # The bounds on the integer, inside the validator: on the union (or outside it)
    # pydantic writes them into the schema as keywords ("ge", "le") no client reads.
    refinement_steps: (
        Annotated[int, Field(ge=0, le=MAX_REFINEMENT_STEPS), BeforeValidator(_whole)] | None
    ) = Field(
        default=None,
        description="Embedding-feedback refinement steps per inversion; null: the service's "
        "setting (EMBED2PROMPT_REFINEMENT_STEPS). Each result's cosine_by_step holds the "
        "first pass's cosine, then one per step.",
    )
    return_metadata: bool = Field(default=True, description="Include performance metrics.")
    aligner: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The embeddings are another embedder's: the name of an aligner in the "
        "service's folder (EMBED2PROMPT_ALIGNER_FOLDER, NAME.npz from `embed2prompt align`). "
        "Each embedding then has that embedder's dimension; prompt_similarity is measured in "
        "its space when the aligner records how to call it, else in the mapped space "
        "(metadata.similarity_space).",
    )


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
        "JSON numbers, not all zero, each 0 or between 2.2e-308 and 3.4e38 in magnitude "
        "(neither denormal nor beyond float32's range).",
    )


class JobRequest(GeneratePromptsRequest):
    """``POST /jobs``: the same options, for up to ``max_embeddings_per_job`` embeddings."""

"""The embeddings the service accepts: :func:`check_vectors`, and the same rule as JSON
Schema for the OpenAPI document (:func:`embedding_schema`).

The rule is :func:`~embed2prompt.inputs.check_embeddings`'s, the one every layer
keeps: ``dimension`` numbers, not all zero, each 0 or a normal float64 within float32's
range (no denormal, nothing beyond 3.4e38). Within those bounds every vector can be
normalised, so a valid request is never refused later under a misleading message. The
schema says exactly this, so that generated clients and fuzzers know what is accepted.
"""

from __future__ import annotations

from typing import Any

from embed2prompt.inputs import LARGEST, SMALLEST_NORMAL, check_embeddings

# The service's modules check request bodies and uploads with it.
check_vectors = check_embeddings


def embedding_schema(dimension: int | None) -> dict[str, Any]:
    """JSON Schema of one embedding: the rule of :func:`check_vectors`."""
    value = {
        "type": "number",
        "anyOf": [
            {"const": 0},
            {"minimum": SMALLEST_NORMAL, "maximum": LARGEST},
            {"minimum": -LARGEST, "maximum": -SMALLEST_NORMAL},
        ],
    }
    schema: dict[str, Any] = {
        "type": "array",
        "items": value,
        "contains": {"not": {"const": 0}},  # not all zeros
        "description": "An embedding: the loaded model's dimension of JSON numbers, not all "
        "zero, each 0 or between 2.2250738585072014e-308 and 3.4028234663852886e38 in "
        "magnitude (neither denormal nor beyond float32's range).",
    }
    if dimension is not None:
        schema["minItems"] = schema["maxItems"] = dimension
    else:
        schema["minItems"] = 1
    return schema

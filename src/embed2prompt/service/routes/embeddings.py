"""``/embed``: texts to vectors with the embedder the inverter was trained for.

The vectors are those ``/generate_prompts_parallel`` inverts, so a person can type a
sentence, embed it here and see what comes back (the web page does exactly that), or
blend two texts' vectors; no other embedder's API key is needed.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from embed2prompt.errors import InputError
from embed2prompt.service.dependencies import ModelsDep, SettingsDep
from embed2prompt.service.errors import error_responses

router = APIRouter()

# A text far longer than the embedder's window is cut anyway (``truncated`` says so);
# this only bounds the work a request can ask for.
MAX_TEXT_CHARACTERS = 20_000
# Some character that ``str.strip`` keeps: the class lists exactly Python's whitespace
# (``str.isspace``), which ``\s`` in JSON Schema's ECMA dialect does not.
_PYTHON_SPACE = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())
NOT_ONLY_SPACE = "[^" + "".join(f"\\u{ord(char):04x}" for char in _PYTHON_SPACE) + "]"


class EmbedRequest(BaseModel):
    """``POST /embed``: the texts to embed."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"texts": ["How do I reset my password?"]}]},
    )

    texts: list[str] = Field(
        min_length=1,
        description="Texts to embed, at most max_embeddings_per_request, each with some "
        f"non-space character and at most {MAX_TEXT_CHARACTERS} characters.",
        # Documented for clients and fuzzers; checked in the handler, whose messages name
        # the text's index.
        json_schema_extra={
            "items": {"type": "string", "pattern": NOT_ONLY_SPACE, "maxLength": MAX_TEXT_CHARACTERS}
        },
    )


class EmbedResponse(BaseModel):
    """One unit vector per text, in order."""

    embeddings: list[list[float]] = Field(description="L2-normalised, one per text.")
    embedder: str = Field(description="The embedding space (the inverter's embedder).")
    dimension: int
    truncated: list[bool] = Field(
        description="Which texts were longer than the embedder's window and were cut to fit."
    )


@router.post("/embed", responses=error_responses(400, 413, 422))
async def embed(body: EmbedRequest, settings: SettingsDep, models: ModelsDep) -> EmbedResponse:
    """Embed texts with the inverter's own embedder: the vectors to invert."""
    limit = settings.max_embeddings_per_request
    if len(body.texts) > limit:
        raise InputError(
            f"{len(body.texts)} texts in one request; at most {limit} (max_embeddings_per_request)"
        )
    for index, text in enumerate(body.texts):
        if not text.strip():
            raise InputError(f"text {index} is empty; expected some words to embed")
        if len(text) > MAX_TEXT_CHARACTERS:
            raise InputError(
                f"text {index} has {len(text)} characters; at most {MAX_TEXT_CHARACTERS}"
            )
        if _has_lone_surrogate(text):
            # JSON can carry "\ud800" alone; no tokenizer can read it.
            raise InputError(f"text {index} holds an unpaired surrogate; expected Unicode text")
    embedder = models.loaded().embedder
    vectors = await embedder.embed(body.texts)
    return EmbedResponse(
        embeddings=vectors.tolist(),
        embedder=embedder.name,
        dimension=embedder.dimension,
        truncated=embedder.truncated(body.texts),
    )


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

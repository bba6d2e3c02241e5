"""Synthetic prompts: text like what users invert (questions, instructions, requests),
written by the local generator, since no package ships such data."""

from __future__ import annotations

from collections.abc import Iterator

from embed2prompt.generators.base import GenerationRequest
from embed2prompt.generators.local import LocalGenerator

TOPICS = (
    "cooking",
    "travel",
    "personal finance",
    "Python programming",
    "web development",
    "databases",
    "machine learning",
    "history",
    "biology",
    "astronomy",
    "music",
    "fitness",
    "gardening",
    "job interviews",
    "writing emails",
    "law",
    "medicine",
    "climate",
    "photography",
    "home repair",
    "parenting",
    "mathematics",
    "chemistry",
    "marketing",
    "cloud computing",
    "cybersecurity",
    "movies",
    "sports",
    "philosophy",
    "language learning",
)
KINDS = (
    "a question someone might ask an AI assistant about {topic}",
    "an instruction someone might give an AI assistant about {topic}",
    "a request for a short piece of writing about {topic}",
    "a one-sentence prompt for a chatbot about {topic}",
)


def synthetic_prompts(count: int, *, generator: LocalGenerator, seed: int = 0) -> Iterator[str]:
    """``count`` attempts at one-line prompts; each is the first line of a generation."""
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        kind = KINDS[(number // len(TOPICS)) % len(KINDS)]
        request = GenerationRequest(
            f"Write {kind.format(topic=topic)}. Reply with that one sentence only.",
            max_tokens=48,
            temperature=0.9,
            seed=seed + number,
        )
        text = generator.generate_sync(request).text.strip().strip('"').splitlines()
        if text:
            yield text[0].strip().strip('"')

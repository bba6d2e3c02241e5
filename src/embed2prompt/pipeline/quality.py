"""Quality evaluation, the seed's definition: what an LLM writes from a prompt, judged by
how close its embedding lands to the target.

1. the generator writes text from the prompt, put through the settings' template;
2. the embedder the target came from embeds that text;
3. ``similarity`` is the cosine between that embedding and the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import EmptyGenerationError
from embed2prompt.generators.base import Generation, GenerationRequest, Generator
from embed2prompt.settings import Settings


@dataclass(frozen=True, slots=True)
class Evaluation:
    similarity: float
    generated_text: str


@dataclass(slots=True)
class CallCounts:
    """Model calls made during a run, for the performance metrics."""

    generator: int = 0
    embedded_texts: int = 0


class QualityEvaluator:
    """Judges prompts against targets with one generator and one embedder."""

    def __init__(
        self, generator: Generator, embedder: Embedder, settings: Settings, counts: CallCounts
    ) -> None:
        self.generator = generator
        self.embedder = embedder
        self._template = settings.prompt_template
        self._max_tokens = settings.generation_max_tokens
        self._temperature = settings.generation_temperature
        self._seed = settings.generation_seed
        self._counts = counts

    async def generate(self, prompt: str, *, template: str | None = None, seed: int = 0) -> str:
        """What the generator writes from ``prompt`` (through ``template``, by default the
        settings' evaluation template)."""
        request = GenerationRequest(
            (template or self._template).format(prompt=prompt),
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            seed=self._seed + seed,
        )
        self._counts.generator += 1
        generation: Generation = await self.generator.generate(request)
        text = generation.text.strip()
        if not text:
            raise EmptyGenerationError(
                f"{self.generator.name} wrote no text for the prompt {prompt[:60]!r}"
            )
        return text

    async def similarities(
        self, texts: list[str], target: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Cosine of each text's embedding to the (unit) target."""
        self._counts.embedded_texts += len(texts)
        vectors = await self.embedder.embed(texts)
        cosines: npt.NDArray[np.float32] = vectors @ target
        return cosines

    async def evaluate(self, prompt: str, target: npt.NDArray[np.float32]) -> Evaluation:
        text = await self.generate(prompt)
        (similarity,) = await self.similarities([text], target)
        return Evaluation(float(similarity), text)

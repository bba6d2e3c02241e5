"""What the service holds between requests: the inverter and one pipeline per tier."""

from __future__ import annotations

from dataclasses import dataclass, field

from embed2prompt.generators.base import Generator
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.pipeline import ParallelPromptGenerator
from embed2prompt.settings import Settings


@dataclass
class ServiceModels:
    """The inverter (loaded once, at start-up) and the pipelines built on first use.

    One :class:`ParallelPromptGenerator` per rate-limit tier, so requests of one tier share
    that tier's limiter; a local generator is one model shared by all tiers."""

    settings: Settings
    inverter: EmbeddingToPromptInference | None = None
    pipelines: dict[str, ParallelPromptGenerator] = field(default_factory=dict)
    shared_generator: Generator | None = None

    def load(self) -> None:
        self.inverter = EmbeddingToPromptInference(
            self.settings.model_path, neighbours=self.settings.retrieval_neighbours
        )

    def loaded(self) -> EmbeddingToPromptInference:
        """The inverter; a RuntimeError before :meth:`load` (the app's lifespan loads it)."""
        if self.inverter is None:
            raise RuntimeError("the service's models are not loaded")
        return self.inverter

    @property
    def generator_loaded(self) -> bool:
        return self.shared_generator is not None or any(
            pipeline.generator_built for pipeline in self.pipelines.values()
        )

    def pipeline(self, tier: str) -> ParallelPromptGenerator:
        inverter = self.loaded()
        if tier not in self.pipelines:
            generator = None
            if self.settings.generator == "local":  # one model in memory, whatever the tier
                if self.shared_generator is None:
                    from embed2prompt.backends import create_generator

                    self.shared_generator = create_generator(self.settings)
                generator = self.shared_generator
            self.pipelines[tier] = ParallelPromptGenerator(
                inverter, self.settings, tier, generator=generator
            )
        return self.pipelines[tier]

    async def aclose(self) -> None:
        for pipeline in self.pipelines.values():
            await pipeline.aclose()
        if self.shared_generator is not None:
            await self.shared_generator.aclose()
        if self.inverter is not None:
            await self.inverter.embedder.aclose()

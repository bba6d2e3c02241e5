"""What the service holds between requests: the inverter, its aligned copies and one
pipeline per tier and aligner.

A request may name an aligner (``"aligner": "NAME"``): the file ``NAME.npz`` in the
settings' ``aligner_folder``. Its inverter shares the loaded model; its pipeline, the
aligner's embedder as feedback when the aligner records one (see
:func:`~embed2prompt.backends.aligned`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from embed2prompt.errors import InputError
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
    pipelines: dict[tuple[str, str | None], ParallelPromptGenerator] = field(default_factory=dict)
    shared_generator: Generator | None = None
    aligned: dict[str, EmbeddingToPromptInference] = field(default_factory=dict)

    def load(self) -> None:
        from embed2prompt.backends import create_inverter

        self.inverter = create_inverter(self.settings)

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

    def inverter_for(self, aligner: str | None) -> EmbeddingToPromptInference:
        """The inverter for the vectors a request sends: the loaded one, or with
        ``aligner``, its copy through that aligner (an :class:`InputError` names the
        aligners there are)."""
        inverter = self.loaded()
        if aligner is None:
            return inverter
        if aligner not in self.aligned:
            from embed2prompt.backends import aligned

            path = aligner_path(self.settings, aligner)
            self.aligned[aligner] = aligned(inverter, path, self.settings)
        return self.aligned[aligner]

    def pipeline(self, tier: str, aligner: str | None = None) -> ParallelPromptGenerator:
        inverter = self.inverter_for(aligner)
        if (tier, aligner) not in self.pipelines:
            generator = None
            if self.settings.generator == "local":  # one model in memory, whatever the tier
                if self.shared_generator is None:
                    from embed2prompt.backends import create_generator

                    self.shared_generator = create_generator(self.settings)
                generator = self.shared_generator
            self.pipelines[tier, aligner] = ParallelPromptGenerator(
                inverter, self.settings, tier, generator=generator
            )
        return self.pipelines[tier, aligner]

    async def aclose(self) -> None:
        for pipeline in self.pipelines.values():
            await pipeline.aclose()
        if self.shared_generator is not None:
            await self.shared_generator.aclose()
        for inverter in self.aligned.values():
            if inverter.feedback is not None:
                await inverter.feedback.aclose()
        if self.inverter is not None:
            await self.inverter.embedder.aclose()


# An aligner's name is a file name in the folder, nothing that could leave it.
_ALIGNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def aligner_path(settings: Settings, name: str) -> Path:
    """The file of the aligner ``name`` in the settings' ``aligner_folder``, or an
    :class:`InputError` saying what there is."""
    if settings.aligner_folder is None:
        raise InputError(
            f"this service has no aligners (aligner {name!r} asked for); set "
            "EMBED2PROMPT_ALIGNER_FOLDER to a folder of NAME.npz files from `embed2prompt align`"
        )
    folder = Path(settings.aligner_folder)
    available = sorted(path.stem for path in folder.glob("*.npz"))
    if not _ALIGNER_NAME.fullmatch(name) or name not in available:
        raise InputError(
            f"no aligner named {name!r}; this service has "
            + (", ".join(repr(known) for known in available) if available else "none")
        )
    return folder / f"{name}.npz"

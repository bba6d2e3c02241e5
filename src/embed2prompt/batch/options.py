"""How a batch run goes: plain values, importable without the models, so that the command
line can check a run's options and paths before it loads anything heavy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatchOptions:
    concurrency: int = 10
    evaluate: bool = False
    variants: int = 0  # variants per prompt; 0: none
    retry_failed: bool = False


@dataclass(frozen=True, slots=True)
class RayOptions:
    address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None: local
    actors: int | None = None  # actors in the pool; None: one per CPU of the cluster
    cpus_per_actor: float = 1.0

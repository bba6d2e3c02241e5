"""What every generator is: a prompt in, the text an LLM writes from it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from embed2prompt.errors import InputError


@dataclass(frozen=True, slots=True)
class Generation:
    """Text written from a prompt, and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation. ``seed`` makes sampling repeatable where the backend allows."""

    prompt: str
    system: str | None = None
    max_tokens: int = 128
    temperature: float = 0.7
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InputError(f"prompt must be a string, got {type(self.prompt).__name__}")
        if not self.prompt.strip():
            raise InputError("prompt is empty; expected text to generate from")
        if self.system is not None and not isinstance(self.system, str):
            raise InputError(f"system must be a string, got {type(self.system).__name__}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise InputError(f"max_tokens must be an integer, got {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InputError(f"temperature must be between 0 and 2, got {self.temperature}")

    def messages(self) -> list[dict[str, str]]:
        chat = [{"role": "system", "content": self.system}] if self.system else []
        return [*chat, {"role": "user", "content": self.prompt}]


@runtime_checkable
class Generator(Protocol):
    """An LLM behind one method. ``name`` identifies the model."""

    @property
    def name(self) -> str: ...

    async def generate(self, request: GenerationRequest) -> Generation: ...

    async def aclose(self) -> None: ...

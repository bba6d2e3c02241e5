"""Names the specification promises that this version does not implement yet."""

from __future__ import annotations

from typing import NoReturn

from embed2prompt.errors import NotAvailableError


def not_available(name: str, capability: str) -> type:
    """A class that refuses to be constructed, with an error that says why."""

    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise NotAvailableError(
            f"{name} is not available yet: it arrives with {capability}. "
            "The rate-limited engine (OpenAIRateLimiter, AsyncEmbeddingProcessor) works now."
        )

    return type(name, (), {"__init__": refuse, "__doc__": f"Not available yet: {capability}."})

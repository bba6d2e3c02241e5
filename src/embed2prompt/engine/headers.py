"""Reading OpenAI's ``x-ratelimit-*`` response headers.

OpenAI reports, on every response, the organisation's limits, what remains of them and
when they reset, as Go-style durations (``20ms``, ``1s``, ``6m0s``). Most compatible
servers (vLLM, llama.cpp) send none of them; every field is then ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration such as ``6m0s`` or ``20ms``; a bare number means seconds.

    Returns ``None`` for anything unparseable, since a malformed header must never fail a
    call that otherwise succeeded.
    """
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    position, total = 0, 0.0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """What the server said about the organisation's limits in one response."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    @property
    def is_empty(self) -> bool:
        return self == _EMPTY

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        lowered = {key.lower(): value for key, value in headers.items()}

        def integer(name: str) -> int | None:
            raw = lowered.get(name)
            if raw is None:
                return None
            try:
                return max(0, int(float(raw)))
            except ValueError:
                return None

        def duration(name: str) -> float | None:
            raw = lowered.get(name)
            return None if raw is None else parse_go_duration(raw)

        return cls(
            limit_requests=integer("x-ratelimit-limit-requests"),
            limit_tokens=integer("x-ratelimit-limit-tokens"),
            remaining_requests=integer("x-ratelimit-remaining-requests"),
            remaining_tokens=integer("x-ratelimit-remaining-tokens"),
            reset_requests_s=duration("x-ratelimit-reset-requests"),
            reset_tokens_s=duration("x-ratelimit-reset-tokens"),
        )


_EMPTY = RateLimitHeaders()


def format_go_duration(seconds: float) -> str:
    """The inverse of :func:`parse_go_duration`, in the style OpenAI sends."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes >= 1:
        return f"{int(minutes)}m{rest:.3g}s"
    return f"{rest:.3g}s"

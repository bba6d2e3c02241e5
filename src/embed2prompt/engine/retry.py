"""When and how long to wait before retrying a failed API call: small pure functions.

The policy is separate from the limiter (which decides when a call may *start*); the
executor combines them. Each function here can be tested alone with a table of inputs.

Retried: connection errors, timeouts, 408, 409, 429 ``rate_limit_exceeded`` (and a 429
without a code) and every 5xx. Never retried: other 4xx such as 400, 401, 403, 404, 422,
and 429 ``insufficient_quota``, since waiting cannot fix a bad request or an empty wallet.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from embed2prompt.errors import ApiError, ConfigurationError

if TYPE_CHECKING:  # the SDK takes a second to import: only when a caller has loaded it
    import openai

FailureKind = Literal["connection", "timeout", "status"]

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_NEVER_RETRY_CODES = frozenset({"insufficient_quota"})


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt, in the terms the policy needs."""

    kind: FailureKind
    message: str
    status: int | None = None
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_rate_limit(self) -> bool:
        """A 429 that asks us to slow down (not an exhausted quota)."""
        return self.status == 429 and self.code not in _NEVER_RETRY_CODES

    @property
    def asks_everyone_to_wait(self) -> bool:
        """429 rate_limit_exceeded or 503: the server is saturated for all callers."""
        return self.is_rate_limit or self.status == 503


def classify(error: BaseException) -> Failure | None:
    """Describe an exception raised by a call, or ``None`` if it is not an API failure
    (a bug in the caller's code, which no retry can fix)."""
    # An error of the openai SDK's own means the SDK is loaded; otherwise none can be.
    if "openai" in sys.modules and (failure := _classify_sdk_error(error)) is not None:
        return failure
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return Failure("timeout", str(error) or "the request timed out")
    if isinstance(error, ConnectionError):
        return Failure("connection", str(error) or "the connection failed")
    if isinstance(error, ApiError) and error.status is not None:
        return Failure("status", str(error), status=error.status, code=error.code)
    return None


def _classify_sdk_error(error: BaseException) -> Failure | None:
    import openai  # already loaded (see classify)

    if isinstance(error, openai.APITimeoutError):
        return Failure("timeout", str(error) or "the request timed out")
    if isinstance(error, openai.APIConnectionError):
        return Failure("connection", str(error) or "the connection failed")
    if isinstance(error, openai.APIStatusError):
        return Failure(
            "status",
            api_error_message(error),
            status=error.status_code,
            code=_error_code(error),
            headers=dict(error.response.headers),
        )
    return None


def _error_code(error: openai.APIStatusError) -> str | None:
    code = getattr(error, "code", None)
    if isinstance(code, str):
        return code
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])
    return None


def api_error_message(error: openai.APIStatusError) -> str:
    """The server's own message from an OpenAI-style error body."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(error.message)


def is_retryable(failure: Failure) -> bool:
    if failure.kind != "status":
        return True
    if failure.code in _NEVER_RETRY_CODES:
        return False
    status = failure.status or 0
    return status in _RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after`` as
    seconds or as an HTTP date (relative to the wall-clock time ``now``)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            milliseconds = float(raw_ms)
        except ValueError:
            pass
        else:
            if math.isfinite(milliseconds) and milliseconds >= 0:
                return milliseconds / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def backoff_delay(retry_number: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads retries out, so many workers that failed together do not come
    back together (the "thundering herd").
    """
    ceiling = min(cap, base * 2.0 ** min(retry_number, 62))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    ``max_attempts`` counts the first try. A server's Retry-After is honoured up to
    ``max_retry_after_s``; without one, the wait is :func:`backoff_delay`.
    ``max_adapting_retries`` more attempts may follow 429s that the limiter owns as its
    own error (it admitted the call at a rate it has since lowered); they do not count
    against ``max_attempts``.
    """

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 120.0
    max_adapting_retries: int = 10

    def __post_init__(self) -> None:
        for name, least in (("max_attempts", 1), ("max_adapting_retries", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{name} must be an integer, got {value!r}")
            if value < least:
                raise ConfigurationError(f"{name} must be at least {least}, got {value}")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative number, got {value!r}")

    def delay_before_retry(
        self, failure: Failure, *, attempt: int, rng: random.Random, now: float
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        ``attempt`` is the number of the attempt that just failed (1 for the first try);
        ``now`` is the wall-clock time, for HTTP-date Retry-After values.
        """
        if attempt >= self.max_attempts or not is_retryable(failure):
            return None
        return self.wait_before_retry(failure, attempt=attempt, rng=rng, now=now)

    def wait_before_retry(
        self, failure: Failure, *, attempt: int, rng: random.Random, now: float
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` of a call that will be retried:
        the server's wait if it gave one, else the backoff for ``attempt``."""
        server_wait = parse_retry_after(failure.headers, now=now)
        if server_wait is not None:
            return min(server_wait, self.max_retry_after_s)
        return backoff_delay(attempt - 1, base=self.base_delay_s, cap=self.max_delay_s, rng=rng)

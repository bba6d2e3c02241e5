"""Every error embed2prompt raises on purpose, rooted in one class.

    Embed2PromptError                 catch this to catch everything of ours
    ├── ConfigurationError            a setting or argument is invalid: fix the call
    │   └── UnknownTierError          a rate-limit tier name that does not exist
    ├── InputError                    the data given (embeddings, texts) is invalid
    ├── NotAvailableError             a capability this version does not implement yet
    ├── LimiterUnavailableError       the shared rate limiter's Redis cannot be reached
    └── ApiError                      a call to an OpenAI-compatible API failed for good
        ├── RequestTooLargeError      one call needs more than a limit allows, so never fits
        └── RetriesExhaustedError     a retryable failure that kept failing

Messages name what was wrong and what was expected. They never contain API keys.
"""

from __future__ import annotations


class Embed2PromptError(Exception):
    """Root of all errors raised deliberately by embed2prompt."""


class ConfigurationError(Embed2PromptError, ValueError):
    """A setting or argument has an invalid value."""


class UnknownTierError(ConfigurationError):
    """A rate-limit tier name that is not one of the known tiers."""


class InputError(Embed2PromptError, ValueError):
    """Input data (embeddings, texts) is malformed."""


class NotAvailableError(Embed2PromptError, NotImplementedError):
    """A capability named by the specification that this version does not provide yet."""


class LimiterUnavailableError(Embed2PromptError):
    """The Redis that holds the shared rate limits cannot be reached: calls stop rather
    than run without limits."""


class ApiError(Embed2PromptError):
    """A call to an OpenAI-compatible API failed and will not be retried.

    ``status`` is the HTTP status when there was one; ``code`` the API's error code
    (for example ``insufficient_quota``) when the body carried one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RequestTooLargeError(ApiError):
    """One call needs more tokens or requests than a limit allows in total: it can never run."""


class RetriesExhaustedError(ApiError):
    """A call failed with retryable errors until the retry policy gave up."""

    def __init__(
        self, message: str, *, attempts: int, status: int | None = None, code: str | None = None
    ):
        super().__init__(message, status=status, code=code)
        self.attempts = attempts


class ItemTimeoutError(Embed2PromptError, TimeoutError):
    """One item of a batch took longer than its time limit; the others go on."""

"""Every error embed2prompt raises on purpose, rooted in one class.

    Embed2PromptError                 catch this to catch everything of ours
    ├── ConfigurationError            a setting or argument is invalid: fix the call
    │   └── UnknownTierError          a rate-limit tier name that does not exist
    ├── InputError                    the data given (embeddings, texts) is invalid
    ├── NotAvailableError             a capability this version does not implement yet
    ├── LimiterUnavailableError       the shared rate limiter's Redis cannot be reached
    ├── ItemTimeoutError              one item of a batch ran past its time limit
    ├── EmptyGenerationError          the generator wrote nothing to judge
    ├── RepeatedRewriteError          every rewrite draft had been evaluated already
    └── ApiError                      a call to an OpenAI-compatible API failed for good
        ├── RequestTooLargeError      one call needs more than a limit allows, so never fits
        ├── RetriesExhaustedError     a retryable failure that kept failing
        ├── BatchRequestError         a request of a Batch API batch failed every attempt
        └── TransientError            a Batch API step that may succeed later

The same tree, with what to do about each, is in docs/errors.md; a test keeps the two
and the classes below the same. Messages name what was wrong and what was expected.
They never contain API keys.
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


class EmptyGenerationError(Embed2PromptError):
    """The generator wrote nothing, so there is no text to judge."""


class RepeatedRewriteError(Embed2PromptError):
    """Every rewrite draft was a prompt that had been evaluated already."""


class BatchRequestError(ApiError):
    """A request of a batch failed (an error answer, an expired or cancelled batch)
    on every attempt allowed."""


class TransientError(ApiError):
    """A Batch API call that may succeed later: the run tries the step again after a
    pause."""

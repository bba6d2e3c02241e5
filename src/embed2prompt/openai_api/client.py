"""One client for OpenAI-compatible APIs: embeddings and chat completions.

It wraps the official SDK's ``AsyncOpenAI`` with the SDK's own retries turned off: each
method makes exactly one attempt and returns the parsed result together with its token
usage and the server's rate-limit headers (an :class:`ApiResponse`, which the
:class:`CallExecutor` reads to correct its token reservation). Limiting and retrying are
the executor's job, so combine the two::

    executor = CallExecutor(limiter=OpenAIRateLimiter(RateLimitTier.TIER_2))
    response = await executor.call(
        lambda: client.create_embeddings(texts, model=model),
        tokens=client.estimate_embedding_tokens(texts, model=model),
    )

A base URL's query (an Azure-style ``?api-key=...&api-version=...``) is sent with every
request (:func:`base_url_and_query`). The API key is held by the SDK alone; every error
message we raise is scrubbed of it, of the URL's password, and of any URL's user,
password and query that the server echoes. Failures surface as the SDK's exceptions
(``openai.RateLimitError`` and so on), which the retry policy classifies;
:func:`describe_api_error` turns them into a credential-free message.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import openai

from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.retry import api_error_message
from embed2prompt.errors import ApiError, InputError
from embed2prompt.inputs import check_texts
from embed2prompt.openai_api.tokens import estimate_chat_tokens, estimate_embedding_tokens
from embed2prompt.redaction import hide_credentials
from embed2prompt.settings import Settings

T = TypeVar("T")

# Models that accept the ``dimensions`` parameter.
_MODELS_WITH_DIMENSIONS = ("text-embedding-3-",)


@dataclass(frozen=True, slots=True)
class ApiResponse(Generic[T]):
    """A parsed API result with what it cost and what the server said about limits."""

    value: T
    tokens_used: int | None
    rate_limit: RateLimitHeaders
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """The first choice of a chat completion."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str


class OpenAIClient:
    """Single-attempt embeddings and chat completions on an OpenAI-compatible API."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self._api_key = settings.require_openai_api_key()
        self._secrets = known_secrets(settings)
        self._sdk = create_sdk(settings, max_retries=0)  # the executor's policy retries

    @property
    def base_url(self) -> str:
        """The base URL requests are made under (without the query they all carry)."""
        return str(self._sdk.base_url)

    async def close(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def create_embeddings(
        self, texts: Sequence[str], *, model: str, dimensions: int | None = None
    ) -> ApiResponse[npt.NDArray[np.float32]]:
        """Embed ``texts`` in one request: an ``(n, d)`` float32 array in input order."""
        check_texts(texts)
        if dimensions is not None and not model.startswith(_MODELS_WITH_DIMENSIONS):
            raise InputError(
                f"model {model!r} does not accept dimensions; only text-embedding-3 models do"
            )
        extra: dict[str, Any] = {} if dimensions is None else {"dimensions": dimensions}
        with self._redacting():
            raw = await self._sdk.embeddings.with_raw_response.create(
                input=list(texts), model=model, encoding_format="base64", **extra
            )
        parsed = raw.parse()
        vectors = _decode_embeddings(parsed.data, expected=len(texts))
        usage = parsed.usage.total_tokens if parsed.usage else None
        return _response(vectors, usage, raw.headers)

    async def create_chat_completion(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> ApiResponse[ChatCompletion]:
        """One chat completion (the first choice)."""
        if not messages:
            raise InputError("messages is empty; expected at least one chat message")
        extra: dict[str, Any] = {}
        if temperature is not None:
            extra["temperature"] = temperature
        if seed is not None:
            extra["seed"] = seed
        with self._redacting():
            raw = await self._sdk.chat.completions.with_raw_response.create(
                messages=list(messages),  # type: ignore[arg-type]
                model=model,
                max_tokens=max_tokens,
                **extra,
            )
        parsed = raw.parse()
        if not parsed.choices:
            raise ApiError(f"chat completion from {model!r} returned no choices")
        choice = parsed.choices[0]
        usage = parsed.usage
        completion = ChatCompletion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            model=parsed.model,
        )
        return _response(completion, usage.total_tokens if usage else None, raw.headers)

    # Token estimates for the limiter's reservation, in OpenAI's own accounting.
    estimate_embedding_tokens = staticmethod(estimate_embedding_tokens)
    estimate_chat_tokens = staticmethod(estimate_chat_tokens)

    @contextlib.contextmanager
    def _redacting(self) -> Iterator[None]:
        """Scrub credentials from any SDK error raised inside: servers and gateways may
        echo the key, or a URL with its user, password or query, in the message or the
        body, and both end up in logs, results and the job database."""
        try:
            yield
        except openai.OpenAIError as error:
            error.args = tuple(_scrub(arg, self._secrets) for arg in error.args)
            if isinstance(error, openai.APIError):
                error.message = _scrub(error.message, self._secrets)
                error.body = _scrub(error.body, self._secrets)
            raise


def create_sdk(settings: Settings, *, max_retries: int) -> openai.AsyncOpenAI:
    """The official SDK's client for ``settings``' key and base URL (its query sent with
    every request, see :func:`base_url_and_query`)."""
    given = settings.openai_base_url
    base_url, query = (None, {}) if given is None else base_url_and_query(given)
    return openai.AsyncOpenAI(
        api_key=settings.require_openai_api_key(),
        base_url=base_url,
        default_query=query or None,
        timeout=settings.request_timeout_s,
        max_retries=max_retries,
    )


def known_secrets(settings: Settings) -> list[str]:
    """What an API error may quote and is never shown: the key, and the base URL's
    password (a URL's user and query are hidden wherever a URL appears)."""
    password = urlsplit(settings.openai_base_url or "").password
    return [secret for secret in (settings.require_openai_api_key(), password) if secret]


def base_url_and_query(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its query and fragment, and the query's parameters.

    The SDK joins each request's path after the base URL's path *and* query
    (``/v1/?api-key=K`` + ``chat/completions``: a 404 for every call), so a query must
    go as the SDK's ``default_query``, which it adds to every request, as its own
    ``AzureOpenAI`` sends ``api-version``. A parameter given twice keeps its last value.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with each of ``secrets``, and every URL's user, password, query and
    fragment, replaced by *** in every string, however nested."""
    if isinstance(value, str):
        return hide_credentials(value, secrets)
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, secrets) for item in value)
    return value


def describe_api_error(error: BaseException) -> str:
    """A one-line, key-free description of an API failure, for users and logs."""
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {api_error_message(error)}"
    return f"{type(error).__name__}: {error}"


def _response(value: T, tokens_used: int | None, headers: Mapping[str, str]) -> ApiResponse[T]:
    plain = dict(headers.items())
    return ApiResponse(value, tokens_used, RateLimitHeaders.from_headers(plain), plain)


def _decode_embeddings(data: Sequence[Any], *, expected: int) -> npt.NDArray[np.float32]:
    if len(data) != expected:
        raise ApiError(f"the server returned {len(data)} embeddings for {expected} inputs")
    rows: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * expected
    for item in data:
        embedding = item.embedding
        if isinstance(embedding, str):  # base64 of little-endian float32, as requested
            row = np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
        else:
            row = np.asarray(embedding, dtype=np.float32)
        rows[item.index] = row
    return np.vstack(rows)

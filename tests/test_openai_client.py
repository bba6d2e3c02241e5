"""The client layer, driven through the real openai SDK against the local server process."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import openai
import pytest
from pydantic import SecretStr

from embed2prompt import (
    ConfigurationError,
    InputError,
    OpenAIClient,
    RetriesExhaustedError,
    Settings,
)
from embed2prompt.engine import CallExecutor, OpenAIRateLimiter, RateLimitConfig, RetryPolicy
from embed2prompt.openai_api.client import describe_api_error
from embed2prompt.testing import OpenAITestServer

from .conftest import TEST_KEY

MODEL = "text-embedding-3-small"
FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


def generous_limits(**overrides: float) -> RateLimitConfig:
    values: dict[str, float] = {
        "requests_per_minute": 60_000,
        "requests_per_day": 1e7,
        "tokens_per_minute": 1e8,
        "tokens_per_day": 1e10,
        "concurrent_requests": 50,
    }
    values.update(overrides)
    return RateLimitConfig(**values)  # type: ignore[arg-type]


async def test_embeddings_round_trip(settings: Settings) -> None:
    async with OpenAIClient(settings) as client:
        response = await client.create_embeddings(["a cat", "a dog", "a cat"], model=MODEL)
    vectors = response.value
    assert vectors.shape == (3, 1536)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])  # same text, same vector, same order
    assert not np.array_equal(vectors[0], vectors[1])
    assert response.tokens_used == client.estimate_embedding_tokens(
        ["a cat", "a dog", "a cat"], model=MODEL
    )
    assert response.rate_limit.is_empty  # this server was configured without limits


async def test_dimensions_are_passed_where_the_model_supports_them(settings: Settings) -> None:
    async with OpenAIClient(settings) as client:
        small = await client.create_embeddings(["x"], model=MODEL, dimensions=256)
        assert small.value.shape == (1, 256)
        with pytest.raises(InputError, match="does not accept dimensions"):
            await client.create_embeddings(["x"], model="text-embedding-ada-002", dimensions=256)


async def test_chat_completion_round_trip(settings: Settings) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Describe the moon"},
    ]
    async with OpenAIClient(settings) as client:
        response = await client.create_chat_completion(messages, model="gpt-4o-mini", seed=3)
    completion = response.value
    assert "Describe the moon" in completion.text
    assert completion.finish_reason == "stop"
    assert completion.prompt_tokens == client.estimate_chat_tokens(
        messages, model="gpt-4o-mini", max_tokens=0
    )
    assert response.tokens_used == completion.prompt_tokens + completion.completion_tokens


async def test_rate_limit_headers_are_parsed(server: OpenAITestServer, settings: Settings) -> None:
    server.configure(rpm=600, tpm=100_000)
    async with OpenAIClient(settings) as client:
        response = await client.create_embeddings(["hello"], model=MODEL)
    limits = response.rate_limit
    assert (limits.limit_requests, limits.limit_tokens) == (600, 100_000)
    assert limits.remaining_requests == 599
    assert limits.reset_requests_s is not None
    assert limits.reset_requests_s == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "texts is empty"),
        (["ok", ""], r"texts\[1\] is empty"),
        (["ok", 3], r"texts\[1\] is int"),
        ("just a string", "list of strings"),
    ],
)
async def test_bad_texts_get_clear_errors(settings: Settings, texts: object, message: str) -> None:
    async with OpenAIClient(settings) as client:
        with pytest.raises(InputError, match=message):
            await client.create_embeddings(texts, model=MODEL)  # type: ignore[arg-type]


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIClient(Settings())


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"error_500_rate": 1.0}, "500"),
        ({"error_503_rate": 1.0, "injected_retry_after_ms": 10}, "503"),
        ({"rate_limit_429_rate": 1.0, "injected_retry_after_ms": 10}, "429_injected"),
        ({"drop_rate": 1.0}, "drop"),
    ],
)
async def test_transient_faults_are_retried_until_they_clear(
    server: OpenAITestServer, settings: Settings, fault: dict[str, float], outcome: str
) -> None:
    server.configure(**fault, seed=1)
    executor = CallExecutor(limiter=OpenAIRateLimiter(generous_limits()), retry_policy=FAST_RETRIES)
    async with OpenAIClient(settings) as client:

        async def embed_then_heal() -> object:
            try:
                return await client.create_embeddings(["heal"], model=MODEL)
            finally:
                if len(server.stats()["arrivals"]) >= 2:
                    server.configure(**{name: 0.0 for name in fault})

        response = await executor.call(embed_then_heal)
    assert response.value.shape == (1, 1536)  # type: ignore[attr-defined]
    outcomes = server.stats()["outcomes"]
    assert outcomes[outcome] == 2
    assert outcomes["ok"] == 1


async def test_hung_requests_time_out_and_are_retried(
    server: OpenAITestServer, settings: Settings
) -> None:
    server.configure(hang_rate=1.0, hang_s=30)
    quick = settings.model_copy(update={"request_timeout_s": 0.3})
    executor = CallExecutor(retry_policy=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    async with OpenAIClient(quick) as client:
        with pytest.raises(RetriesExhaustedError, match="timeout") as caught:
            await executor.call(lambda: client.create_embeddings(["slow"], model=MODEL))
    assert caught.value.attempts == 2
    assert server.stats()["outcomes"]["hang"] == 2


async def test_exhausted_quota_is_never_retried(
    server: OpenAITestServer, settings: Settings
) -> None:
    server.configure(quota_exhausted=True)
    async with OpenAIClient(settings) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await CallExecutor(retry_policy=FAST_RETRIES).call(
                lambda: client.create_embeddings(["x"], model=MODEL)
            )
    assert "current quota" in describe_api_error(caught.value)
    assert server.stats()["outcomes"] == {"429_quota": 1}


async def test_a_wrong_key_is_refused_once_and_never_leaked(
    server: OpenAITestServer, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-wrong-key-that-must-not-leak-42"
    server.configure(api_key=TEST_KEY)
    wrong = settings.model_copy(update={"openai_api_key": SecretStr(secret)})
    caplog.set_level(logging.DEBUG)
    async with OpenAIClient(wrong) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await CallExecutor(retry_policy=FAST_RETRIES).call(
                lambda: client.create_embeddings(["x"], model=MODEL)
            )
    assert server.stats()["outcomes"] == {"401": 1}
    assert secret not in str(caught.value)
    assert secret not in describe_api_error(caught.value)
    assert secret not in repr(wrong)
    assert secret not in caplog.text


async def test_server_limit_429s_are_counted_and_retried(
    server: OpenAITestServer, settings: Settings
) -> None:
    """A client limiter looser than the server's limit: the server's 429s, with their
    retry-after, pause the client until everything gets through."""
    server.configure(rpm=600, limit_window_s=1)  # a bucket of 10, refilled at 10/s
    executor = CallExecutor(
        limiter=OpenAIRateLimiter(generous_limits()),
        retry_policy=RetryPolicy(max_attempts=10, base_delay_s=0.05),
    )
    async with OpenAIClient(settings) as client:
        results = await asyncio.gather(
            *(
                executor.call(lambda i=i: client.create_embeddings([f"t{i}"], model=MODEL))
                for i in range(30)
            )
        )
    assert len(results) == 30
    stats = server.stats()
    assert stats["outcomes"]["ok"] == 30
    assert stats["outcomes"]["429_limit"] >= 1
    assert all(count == 1 for count in stats["succeeded_inputs"].values())


async def test_a_429_storm_loses_no_item_and_repeats_none(
    server: OpenAITestServer, settings: Settings
) -> None:
    from embed2prompt import AsyncEmbeddingProcessor

    server.configure(rate_limit_429_rate=0.2, injected_retry_after_ms=10, seed=3)
    texts = [f"storm {i}" for i in range(60)]
    async with OpenAIClient(settings) as client:
        processor = AsyncEmbeddingProcessor(
            limiter=OpenAIRateLimiter(generous_limits()),
            retry_policy=RetryPolicy(max_attempts=10, base_delay_s=0.01),
            max_concurrent=10,
        )
        report = await processor.run(
            lambda text: client.create_embeddings([text], model=MODEL), texts
        )
    assert all(result.ok for result in report.results)
    stats = server.stats()
    assert stats["succeeded_inputs"] == dict.fromkeys(texts, 1)
    injected = stats["outcomes"]["429_injected"]
    assert injected > 0
    assert report.metrics.rate_limited == injected
    assert report.metrics.attempts == 60 + injected


async def test_a_key_echoed_by_the_server_is_scrubbed_everywhere() -> None:
    """Some servers echo the Authorization header in their error bodies."""
    from aiohttp import web

    secret = "sk-echoed-secret-0123456789"

    async def echo(request: web.Request) -> web.Response:
        body = {"error": {"message": f"bad {request.headers['Authorization']}", "code": None}}
        return web.json_response(body, status=500)

    app = web.Application()
    app.router.add_post("/v1/embeddings", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = Settings(
        openai_api_key=SecretStr(secret), openai_base_url=f"http://127.0.0.1:{port}/v1"
    )
    executor = CallExecutor(retry_policy=RetryPolicy(max_attempts=2, base_delay_s=0))
    try:
        async with OpenAIClient(settings) as client:
            with pytest.raises(RetriesExhaustedError) as caught:
                await executor.call(lambda: client.create_embeddings(["x"], model=MODEL))
    finally:
        await runner.cleanup()
    cause = caught.value.__cause__
    assert cause is not None
    assert "***" in str(caught.value)
    for text in (str(caught.value), str(cause), describe_api_error(cause), repr(cause.body)):  # type: ignore[attr-defined]
        assert secret not in text


QUERY_KEY = "query-key-SECRET-5d7e21"  # an Azure-style deployment's key, in the URL


async def test_a_base_url_with_a_query_sends_it_with_every_call(
    server: OpenAITestServer, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK joins the path after a base URL's query (``/v1/?api-key=K`` +
    ``chat/completions``): every call was a 404. The query now goes with each call."""
    query = {"api-key": QUERY_KEY, "api-version": "2024-10-21"}
    server.configure(required_query=query)
    with_query = settings.model_copy(
        update={"openai_base_url": f"{server.url}?api-key={QUERY_KEY}&api-version=2024-10-21"}
    )
    caplog.set_level(logging.DEBUG)
    async with OpenAIClient(with_query) as client:
        embedded = await client.create_embeddings(["a cat"], model=MODEL)
        chat = await client.create_chat_completion(
            [{"role": "user", "content": "Describe the moon"}], model="gpt-4o-mini"
        )
        assert client.base_url == f"{server.url}/"  # the query is not part of the path
    assert embedded.value.shape == (1, 1536)
    assert "Describe the moon" in chat.value.text
    assert server.stats()["outcomes"] == {"ok": 2}
    assert "api-version=2024-10-21" in caplog.text  # httpx logged the URLs called
    async with OpenAIClient(settings) as client:  # the server does refuse calls without it
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.create_embeddings(["a cat"], model=MODEL)
    assert "Access denied" in describe_api_error(caught.value)


async def test_credentials_echoed_in_an_error_body_are_scrubbed(
    server: OpenAITestServer, settings: Settings
) -> None:
    """A gateway that quotes the URL it called, user, password and query, in its error:
    only the API key was scrubbed, so the rest reached results and the job database."""
    password = "pw-SECRET-9a8b7c"
    echoed = (
        f"upstream http://proxy-user:{password}@10.0.0.7:8080/v1/chat/completions"
        f"?api-key={QUERY_KEY} answered 502; also tried {password} with key {TEST_KEY}"
    )
    # The URL's user and password go as Basic auth, in place of the key: any is taken.
    server.configure(api_key=None, error_500_rate=1.0, error_message=echoed)
    credentials = settings.model_copy(
        update={"openai_base_url": server.url.replace("://", f"://proxy-user:{password}@")}
    )
    executor = CallExecutor(retry_policy=RetryPolicy(max_attempts=2, base_delay_s=0))
    async with OpenAIClient(credentials) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            await executor.call(lambda: client.create_embeddings(["x"], model=MODEL))
    cause = caught.value.__cause__
    assert isinstance(cause, openai.InternalServerError)
    shown = [str(caught.value), str(cause), describe_api_error(cause), repr(cause.body)]
    assert "upstream http://***@10.0.0.7:8080/v1/chat/completions?*** answered 502" in shown[2]
    for text in shown:
        for secret in ("proxy-user", password, QUERY_KEY, TEST_KEY):
            assert secret not in text, text

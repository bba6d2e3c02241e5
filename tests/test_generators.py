"""Generators: the local SmolLM2, and the OpenAI backend against two real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from embed2prompt import InputError, Settings
from embed2prompt.backends import create_generator
from embed2prompt.generators.base import GenerationRequest, Generator
from embed2prompt.generators.local import LocalGenerator, packaged_gguf_path
from embed2prompt.testing import free_port


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[LocalGenerator]:
    generator = LocalGenerator()
    yield generator
    await generator.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_local_generation_is_repeatable_for_a_seed(local: LocalGenerator) -> None:
    assert isinstance(local, Generator)
    request = GenerationRequest("Describe a lighthouse in one sentence.", max_tokens=30, seed=5)
    first, again = await local.generate(request), await local.generate(request)
    assert first == again
    assert first.text
    assert 0 < first.completion_tokens <= 30
    assert first.prompt_tokens > 5
    other = await local.generate(
        GenerationRequest("Describe a lighthouse in one sentence.", max_tokens=30, seed=6)
    )
    assert other.text != first.text


@pytest.mark.asyncio(loop_scope="module")
async def test_local_generation_follows_the_prompt(local: LocalGenerator) -> None:
    result = await local.generate(
        GenerationRequest("List three fruits.", max_tokens=40, temperature=0.0)
    )
    assert any(fruit in result.text.lower() for fruit in ("apple", "banana", "orange", "grape"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": 7}, "prompt must be a string"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens must be at least 1"),
        ({"prompt": "x", "temperature": 3.0}, "temperature"),
        ({"prompt": "x", "system": 1}, "system must be a string"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        GenerationRequest(**kwargs)  # type: ignore[arg-type]


async def test_openai_generator_against_the_test_server(settings: Settings) -> None:
    generator = create_generator(settings.model_copy(update={"generator": "openai"}))
    try:
        result = await generator.generate(GenerationRequest("Tell me about tides", max_tokens=50))
    finally:
        await generator.aclose()
    assert generator.name == "openai:gpt-4o-mini"
    assert "Tell me about tides" in result.text
    assert result.total_tokens == result.prompt_tokens + result.completion_tokens


@pytest.fixture(scope="module")
def llama_cpp_server() -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server: a real peer, not ours."""
    pytest.importorskip("llama_cpp.server")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(packaged_gguf_path()),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as response:
                    json.loads(response.read())
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def test_openai_generator_against_llama_cpp_server(llama_cpp_server: str) -> None:
    settings = Settings(
        openai_api_key=SecretStr("sk-no-key-needed"),
        openai_base_url=llama_cpp_server,
        generator="openai",
        generator_model="smollm2",
        request_timeout_s=60,
    )
    generator = create_generator(settings)
    try:
        result = await generator.generate(
            GenerationRequest("Name a colour of the sky.", max_tokens=20, temperature=0.0, seed=1)
        )
    finally:
        await generator.aclose()
    assert result.text.strip()
    assert 0 < result.completion_tokens <= 20
    assert result.prompt_tokens > 0

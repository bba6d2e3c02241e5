"""Shared fixtures: the local OpenAI-compatible server as a real process on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, ServerConfig

TEST_KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="session")
def api_server() -> Iterator[OpenAITestServer]:
    """One server process for the whole session; each test resets it to defaults."""
    with OpenAITestServer(ServerConfig(api_key=TEST_KEY)) as server:
        yield server


@pytest.fixture
def server(api_server: OpenAITestServer) -> Iterator[OpenAITestServer]:
    api_server.configure(**_defaults())
    api_server.reset()
    return api_server


def _defaults() -> dict[str, object]:
    from dataclasses import asdict

    return asdict(ServerConfig(api_key=TEST_KEY))


@pytest.fixture
def settings(server: OpenAITestServer) -> Settings:
    return Settings(
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=server.url,
        request_timeout_s=5.0,
    )

"""The local OpenAI-compatible server itself: protocol details and its own limit check."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from embed2prompt.testing import OpenAITestServer

from .conftest import TEST_KEY


def post(server: OpenAITestServer, path: str, body: Any, key: str = TEST_KEY) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_error_bodies_follow_openai(server: OpenAITestServer) -> None:
    status, body = post(server, "/embeddings", {"model": "m", "input": []})
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    status, body = post(server, "/embeddings", {"model": "m", "input": "x"}, key="sk-nope")
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    status, body = post(server, "/embeddings", {"model": "m", "input": ["x"] * 2049})
    assert status == 400


def test_float_embeddings_by_default(server: OpenAITestServer) -> None:
    status, body = post(server, "/embeddings", {"model": "text-embedding-3-large", "input": "x"})
    assert status == 200
    assert len(body["data"][0]["embedding"]) == 3072
    assert body["usage"] == {"prompt_tokens": 1, "total_tokens": 1}


def test_own_limit_answers_429_with_retry_after(server: OpenAITestServer) -> None:
    server.configure(rpm=60, limit_window_s=3)  # a bucket of 3 requests
    statuses = [post(server, "/embeddings", {"model": "m", "input": "x"})[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    _, body = post(server, "/embeddings", {"model": "m", "input": "x"})
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "RPM" in body["error"]["message"]
    arrivals = server.stats()["arrivals"]
    assert [a["outcome"] for a in arrivals] == ["ok"] * 3 + ["429_limit"] * 3
    assert all(a["t"] >= 0 for a in arrivals)


def test_token_limit_counts_max_tokens_of_chat_calls(server: OpenAITestServer) -> None:
    server.configure(tpm=6_000, limit_window_s=1)  # a bucket of 100 tokens
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 90,
        "messages": [{"role": "user", "content": "hi"}],
    }
    first, _ = post(server, "/chat/completions", body)
    second, answer = post(server, "/chat/completions", body)
    assert (first, second) == (200, 429)
    assert "TPM" in answer["error"]["message"]


@pytest.mark.parametrize("setting", ["no_such_setting"])
def test_unknown_settings_are_refused(server: OpenAITestServer, setting: str) -> None:
    with pytest.raises(urllib.error.HTTPError):
        server.configure(**{setting: 1})

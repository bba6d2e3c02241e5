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


def test_a_sliding_window_counts_refused_requests_and_sends_no_limit_headers(
    server: OpenAITestServer,
) -> None:
    # 3 requests in any 3 s, as proxies without x-ratelimit headers enforce it.
    server.configure(
        rpm=60,
        limit_window_s=3,
        sliding_window=True,
        send_rate_limit_headers=False,
        limit_retry_after_s=1,
    )
    answers = [post_with_headers(server, {"model": "m", "input": "x"}) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429]
    _, headers, body = answers[3]
    assert body["error"] == {
        "message": body["error"]["message"],
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "RPM" in body["error"]["message"]
    assert headers["retry-after"] == "1"
    assert not [name for name in headers if name.lower().startswith("x-ratelimit")]
    assert not [name for name in answers[0][1] if name.lower().startswith("x-ratelimit")]
    stats = server.stats()
    assert stats["outcomes"] == {"ok": 3, "429_limit": 2}


def test_a_sliding_window_stays_full_while_refused_requests_keep_coming() -> None:
    """Unlike a bucket, refusals count: the window frees only when they have aged out."""
    from embed2prompt.testing.openai_server import ServerConfig, _Limits

    limits = _Limits(ServerConfig(rpm=60, limit_window_s=3, sliding_window=True))
    times = (0.0, 0.5, 1.0, 2.0, 3.1, 3.6, 4.1, 5.1, 8.2)
    outcomes = [limits.admit(1, now)[0] is None for now in times]
    # Three admitted; the refusal at 2 is counted, so when the first leaves at 3 the window
    # is still full, and each refusal keeps it full until 3 s after the last (5.1).
    assert outcomes == [True, True, True, False, False, False, False, False, True]
    assert [limits.admit(1, now)[0] for now in (8.3, 8.4)] == [None, None]
    broken, wait = limits.admit(1, 8.5)  # full again: room when 8.2 leaves, at 11.2
    assert (broken, wait) == ("requests", pytest.approx(2.7))


def post_with_headers(server: OpenAITestServer, body: Any) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        server.url + "/embeddings",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())

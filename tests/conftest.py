"""Shared fixtures: the local OpenAI-compatible server as a real process on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from embed2prompt.inversion.lexicon_cache import LEXICON_FOLDER
from embed2prompt.inversion.model_paths import default_cache_dir
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, ServerConfig, free_port

TEST_KEY = "sk-test-0123456789abcdef"
TEST_FEEDBACK_LEXICON = 400


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache folder (EMBED2PROMPT_CACHE_DIR) of this process and the commands it
    starts: the session's temporary folder, so what tests cache (lexicons embedded by
    their embedders) never lands in the user's home. Packages' weights already unpacked
    there (SmolLM2 de-quantised, mpnet, the judge: a gigabyte, a minute to make) are
    linked in, read as they are, rather than made again every session."""
    shared = default_cache_dir()
    folder = tmp_path_factory.mktemp("cache")
    if shared.is_dir():
        for entry in shared.iterdir():
            if entry.name != LEXICON_FOLDER:
                (folder / entry.name).symlink_to(entry)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBED2PROMPT_CACHE_DIR", str(folder))
        # A foreign feedback embedder embeds this many lexicon words, not all 20,000
        # (minutes through a local server): what tests check is where edits are guided.
        patch.setenv("EMBED2PROMPT_FEEDBACK_LEXICON", str(TEST_FEEDBACK_LEXICON))
        yield folder


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


@contextmanager
def redis_server(folder: Path, password: str | None = None) -> Iterator[int]:
    """A real redis-server on loopback (installed by `make test`), with ``password``
    required if given, until the block ends: its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(folder), *(["--requirepass", password] if password else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    hello = (f"AUTH {password}\r\n" if password else "") + "PING\r\n"
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(hello.encode())
                answer = b""
                while b"+PONG" not in answer and (part := connection.recv(64)):
                    answer += part
                if b"+PONG" in answer:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)  # polling a server that is starting
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on loopback for the session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as port:
        yield f"redis://127.0.0.1:{port}/0"

"""No credential from the settings ever leaves in a response, a log line or a file (issue 19).

Every setting that can hold a credential gets one: the OpenAI key, the service's own
key, a user and password in the OpenAI base URL, a password in the Redis URL (a real
redis-server that requires it). Then the service runs as a user runs it (``python
api/app.py`` on loopback: good requests, bad ones, the upstream failing, /health,
/ready, /metrics, a job and an upload) and so does the CLI (``embed2prompt invert``
with evaluation through the API: a run, a run whose API calls fail, a run stopped by
SIGINT and its resume hint, a usage error). Every response (status line, headers,
body), everything printed or logged, and every file written under the test's folder
(the job database, outputs, state files) is searched for each credential, its parts
and the forms it takes on the wire (Basic auth's base64).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench.fuzz import ROOT, running_service

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, ServerConfig
from tests.conftest import redis_server

OPENAI_KEY = "sk-SECRET-openai-3f9c2a71"
SERVICE_KEY = "SECRET-service-key-8d20e4"
URL_USER = "SECRETuser5b"
URL_PASSWORD = "SECRETpass-77ab19"
REDIS_PASSWORD = "SECRET-redis-4c1d06"
URL_QUERY_KEY = "SECRET-query-key-e61f0b"  # as Azure-style deployments send a key

NEEDLES = {
    "OPENAI_API_KEY": OPENAI_KEY,
    "API_KEY": SERVICE_KEY,
    "OPENAI_BASE_URL's user": URL_USER,
    "OPENAI_BASE_URL's password": URL_PASSWORD,
    "OPENAI_BASE_URL's Basic auth": base64.b64encode(
        f"{URL_USER}:{URL_PASSWORD}".encode()
    ).decode(),
    "REDIS_URL's password": REDIS_PASSWORD,
    "OPENAI_BASE_URL's query": URL_QUERY_KEY,
}
# The settings given a credential here; a new setting that can hold one must be added.
COVERED = {"openai_api_key", "api_key", "openai_base_url", "redis_url"}


def test_every_setting_that_can_hold_a_credential_is_covered() -> None:
    """A secret (SecretStr) or a URL (which can carry user:password@)."""
    can_hold = {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation) or name.endswith("_url")
    }
    assert can_hold == COVERED


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode(errors="replace") if isinstance(text, str) else text
    return [name for name, secret in NEEDLES.items() if secret.encode() in data]


def _assert_files_clean(folder: Path) -> int:
    """Every file under ``folder``, as bytes; how many were searched."""
    searched = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            searched += 1
            leaks = _leaks(path.read_bytes())
            assert not leaks, f"{path.relative_to(folder)} holds {leaks}"
    return searched


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on loopback that requires ``REDIS_PASSWORD``."""
    with redis_server(tmp_path_factory.mktemp("redis-secret"), REDIS_PASSWORD) as port:
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAITestServer]:
    """The OpenAI-compatible API, taking any credentials (the URL's user and password
    go to it as Basic auth, in place of the key)."""
    with OpenAITestServer(ServerConfig()) as server:
        yield server


def _with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{URL_USER}:{URL_PASSWORD}@{rest}"


def _environment(upstream: OpenAITestServer, redis_url: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "API_KEY": SERVICE_KEY,
        "OPENAI_BASE_URL": _with_credentials(upstream.url),
        "EMBED2PROMPT_REDIS_URL": redis_url,
        "EMBED2PROMPT_GENERATOR": "openai",
        "EMBED2PROMPT_REFINEMENT_STEPS": "0",
        "EMBED2PROMPT_GENERATION_MAX_TOKENS": "8",
        "EMBED2PROMPT_MAX_ATTEMPTS": "2",
        "EMBED2PROMPT_RETRY_BASE_DELAY_S": "0",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def vectors() -> list[list[float]]:
    texts = ["How do I reset my password?", "Write a short poem about the sea."]
    rows: list[list[float]] = LocalEmbedder().embed_sync(texts).tolist()
    return rows


class Exchanges:
    """Requests to the service; every answer kept whole (status line, headers, body)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[str] = []

    def call(
        self, method: str, path: str, body: bytes | None = None, *, key: bool = True, **headers: str
    ) -> tuple[int, Any]:
        sent = {"Content-Type": "application/json", **headers}
        if key:
            sent["Authorization"] = f"Bearer {SERVICE_KEY}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                status, head, raw = response.status, str(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, head, raw = error.code, str(error.headers), error.read()
        self.seen.append(f"{method} {path} -> {status}\n{head}\n{raw.decode(errors='replace')}")
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def json(self, method: str, path: str, body: object, **options: Any) -> tuple[int, Any]:
        return self.call(method, path, json.dumps(body).encode(), **options)


@pytest.mark.slow
def test_the_service_never_shows_a_credential(
    tmp_path: Path,
    upstream: OpenAITestServer,
    redis_with_password: str,
    vectors: list[list[float]],
) -> None:
    upstream.configure(error_500_rate=0.0)
    env = _environment(upstream, redis_with_password)
    with running_service(tmp_path, **env) as service:
        client = Exchanges(service.url)
        good = {"embeddings": vectors[:1], "max_concurrent": 2}
        assert client.call("GET", "/health", key=False)[0] == 200
        assert client.call("GET", "/ready")[0] == 200
        assert client.call("GET", "/ready", key=False)[0] == 401
        assert client.call("GET", "/openapi.json", key=False)[0] == 200
        assert client.call("GET", "/docs", key=False)[0] == 200
        status, body = client.json("POST", "/generate_prompts_parallel", good)
        assert status == 200, body
        assert body["summary"]["successful"] == 1, body  # through the API and Redis
        # Mistakes of every kind: no key, a wrong key, bad JSON, bad values, no such job.
        assert client.json("POST", "/generate_prompts_parallel", good, key=False)[0] == 401
        wrong = {"X-API-Key": OPENAI_KEY}  # someone sends the wrong one of our secrets
        assert client.json("POST", "/jobs", good, key=False, **wrong)[0] == 401
        assert client.call("POST", "/jobs", b'{"embeddings": [[0.1,')[0] == 422
        assert client.call("POST", "/jobs", b'{"embeddings": [[NaN]]}')[0] == 422
        assert client.json("POST", "/jobs", {"embeddings": [[0.1, 0.2]]})[0] == 422
        assert client.call("GET", "/jobs/nonexistent")[0] == 404
        # The API failing: items fail, and say why.
        upstream.configure(error_500_rate=1.0)
        status, body = client.json("POST", "/generate_prompts_parallel", good)
        assert status == 200, body
        assert body["summary"]["failed"] == 1, body
        upstream.configure(error_500_rate=0.0)
        # A job, its upload twin, their status and results.
        status, job = client.json("POST", "/jobs", {"embeddings": vectors})
        assert status == 202, job
        lines = "".join(json.dumps(vector) + "\n" for vector in vectors).encode()
        status, uploaded = client.call(
            "POST", "/jobs/upload", lines, **{"Content-Type": "application/x-ndjson"}
        )
        assert status == 202, uploaded
        for job_id in (job["id"], uploaded["id"]):
            deadline = time.monotonic() + 240
            while client.call("GET", f"/jobs/{job_id}")[1]["state"] != "completed":
                assert time.monotonic() < deadline, "the job did not finish"
                time.sleep(0.2)  # polling another process
            assert client.call("GET", f"/jobs/{job_id}/results")[0] == 200
            assert client.call("GET", f"/jobs/{job_id}/results?format=jsonl")[0] == 200
            assert client.call("DELETE", f"/jobs/{job_id}")[0] == 200
        assert client.call("GET", "/metrics")[0] == 200
    for exchange in client.seen:
        assert not _leaks(exchange), exchange[:2000]
    log = service.log.read_text()
    assert "Application startup complete" in log  # the log was captured
    assert not _leaks(log), [line for line in log.splitlines() if _leaks(line)][:5]
    assert _assert_files_clean(tmp_path) >= 2  # the log and the job database at least


def _invert(
    folder: Path,
    env: dict[str, str],
    *arguments: str,
    stop_after_rows: int | None = None,
    debug: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``embed2prompt invert ARGUMENTS`` in ``folder``; with ``stop_after_rows``, SIGINT
    once the output holds that many rows; with ``debug``, every library's debug log."""
    command = [sys.executable, "-m", "embed2prompt", *(["--debug"] if debug else [])]
    command += ["invert", *arguments]
    environment = {**os.environ, "EMBED2PROMPT_MODEL_PATH": str(ROOT / "models/small_model.pt")}
    process = subprocess.Popen(
        command,
        cwd=folder,
        env={**environment, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stop_after_rows is not None:
        output = folder / "stopped.jsonl"
        deadline = time.monotonic() + 240
        while not (output.exists() and len(output.read_text().splitlines()) >= stop_after_rows):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no row was written"
            time.sleep(0.1)  # polling another process
        process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_the_cli_never_shows_a_credential(
    tmp_path: Path,
    upstream: OpenAITestServer,
    redis_with_password: str,
    vectors: list[list[float]],
) -> None:
    env = _environment(upstream, redis_with_password)
    del env["API_KEY"]  # the service's; the CLI has none
    rows = np.asarray(vectors * 15, dtype=np.float32)
    np.save(tmp_path / "vectors.npy", rows)
    # The small decoder inverts: where credentials go does not depend on the inverter, and
    # each run starts seconds sooner than one that loads the default's language model.
    evaluate = ["--steps", "0", "--evaluate", "--generator", "openai", "--no-progress"]
    evaluate += ["--inverter", str(SMALL_MODEL)]
    on_the_command_line = ["--base-url", _with_credentials(upstream.url)]
    runs = []

    upstream.configure(error_500_rate=0.0, latency_ms=0)
    done = _invert(tmp_path, env, "vectors.npy", "-o", "done.jsonl", *evaluate)
    assert done.returncode == 0, done.stderr
    runs.append(done)

    upstream.configure(error_500_rate=1.0)
    failing = _invert(
        tmp_path, env, "vectors.npy", "-o", "failing.jsonl", *evaluate, *on_the_command_line,
        debug=True,
    )  # fmt: skip
    assert failing.returncode == 1, failing.stderr[-3000:]  # rows failed, each saying why
    assert "HTTP Request: POST http://***@127.0.0.1" in failing.stderr  # the log is there
    assert json.loads((tmp_path / "failing.jsonl").read_text().splitlines()[0])["error"]
    runs.append(failing)

    upstream.configure(error_500_rate=0.0, latency_ms=300)
    stopped = _invert(
        tmp_path,
        env,
        "vectors.npy",
        "-o",
        "stopped.jsonl",
        *evaluate,
        *on_the_command_line,
        "--concurrency",
        "1",
        stop_after_rows=1,
    )
    assert stopped.returncode == 130, stopped.stderr
    assert "--base-url" in stopped.stderr + stopped.stdout  # the resume hint, credentials hidden
    runs.append(stopped)
    upstream.configure(latency_ms=0)

    usage = _invert(tmp_path, env, "missing.npy", "-o", "x.jsonl", *on_the_command_line)
    assert usage.returncode == 2, usage.stderr
    runs.append(usage)

    for run in runs:
        for text in (run.stdout, run.stderr):
            assert not _leaks(text), text[-2000:]
    assert _assert_files_clean(tmp_path) >= 4  # outputs and their state files


@pytest.mark.slow
def test_a_key_in_the_base_urls_query_works_and_is_never_shown(
    tmp_path: Path, upstream: OpenAITestServer, vectors: list[list[float]]
) -> None:
    """A key in ``OPENAI_BASE_URL``'s query string (``?api-key=...``, as Azure-style
    deployments take it) goes with every call: the SDK joined the path after the query,
    so every call was a 404 while ``/ready`` said the API was reachable. It is never
    shown: httpx logs each URL called (the service's log, the CLI's ``--debug``), and an
    upstream that quotes the URL it was called at, user, password and query, in its
    error reached the results and the job database."""
    query = {"api-key": URL_QUERY_KEY, "api-version": "2024-10-21"}
    with_query = f"{upstream.url}?api-key={URL_QUERY_KEY}&api-version=2024-10-21"
    called = f"{_with_credentials(upstream.url)}/chat/completions?api-key={URL_QUERY_KEY}"
    echoed = f"gateway: {called} failed"  # what a gateway says of the URL it called
    env = {
        **_environment(upstream, "redis://127.0.0.1:1/0"),
        "OPENAI_BASE_URL": with_query,
    }
    del env["EMBED2PROMPT_REDIS_URL"]  # the limiter in process: this test is the URL's
    upstream.configure(error_500_rate=0.0, latency_ms=0, required_query=query)
    try:
        with running_service(tmp_path, **env) as service:
            client = Exchanges(service.url)
            good = {"embeddings": vectors[:1], "max_concurrent": 1}
            status, body = client.json("POST", "/generate_prompts_parallel", good)
            assert status == 200, body
            assert body["summary"]["successful"] == 1, body  # the calls carried the key
            status, ready = client.call("GET", "/ready")
            assert status == 200, ready
            assert ready["backends"]["generator"]["status"] == 200, ready
            upstream.configure(error_500_rate=1.0, error_message=echoed)
            status, body = client.json("POST", "/generate_prompts_parallel", good)
            assert status == 200, body
            assert "gateway: http://***@127.0.0.1" in json.dumps(body), body  # its error
            status, job = client.json("POST", "/jobs", good)
            assert status == 202, job
            deadline = time.monotonic() + 240
            while (state := client.call("GET", f"/jobs/{job['id']}")[1])["done"] < 1:
                assert time.monotonic() < deadline, "the job did not finish"
                time.sleep(0.2)  # polling another process
            assert state["failed"] == 1, state
            status, page = client.call("GET", f"/jobs/{job['id']}/results")
            assert "gateway: http://***@127.0.0.1" in json.dumps(page), page
        log = service.log.read_text()
        assert "HTTP Request: POST http://127.0.0.1" in log  # the calls were logged
        assert not _leaks(log), [line for line in log.splitlines() if _leaks(line)][:3]
        for exchange in client.seen:
            assert not _leaks(exchange), exchange[:2000]
        np.save(tmp_path / "vectors.npy", np.asarray(vectors, dtype=np.float32))
        del env["API_KEY"]
        run = _invert(
            tmp_path, env, "vectors.npy", "-o", "out.jsonl", "--steps", "0", "--evaluate",
            "--generator", "openai", "--base-url", with_query, "--no-progress",
            "--inverter", str(SMALL_MODEL), debug=True,
        )  # fmt: skip
        assert run.returncode == 1, run.stderr[-3000:]  # the rows failed, saying why
        assert "HTTP Request: POST http://127.0.0.1" in run.stderr, run.stderr[-3000:]
        failed = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
        assert "gateway: http://***@127.0.0.1" in failed["error"], failed
        assert not _leaks(run.stdout + run.stderr), run.stderr[-2000:]
        assert _assert_files_clean(tmp_path) >= 3  # the log, the job database, the output
    finally:
        upstream.configure(error_500_rate=0.0, error_message=None, required_query=None)


@pytest.fixture(autouse=True)
def _settings_are_not_read_from_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials go to the processes started, never into this one's settings."""
    for name in ("OPENAI_API_KEY", "API_KEY", "OPENAI_BASE_URL", "EMBED2PROMPT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)

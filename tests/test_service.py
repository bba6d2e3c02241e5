"""The HTTP service over real HTTP: `python api/app.py` started as a process on loopback."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.service.health import backends
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer, free_port
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]
KEY = "svc-key-0123456789"


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str]
    log: Path


def _start(log: Path, **settings: str) -> Service:
    """``python api/app.py`` with these settings, once /health answers."""
    port = free_port()
    env = {**os.environ, "EMBED2PROMPT_PORT": str(port), **settings}
    with log.open("a") as output:
        process = subprocess.Popen(
            [sys.executable, "api/app.py"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            status, _ = _request(url, "GET", "/health")
            if status == 200:
                return Service(url, process, log)
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the service did not start:\n{log.read_text()}")
        time.sleep(0.2)  # polling a process that is starting, not waiting on a clock


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("service")
    started = _start(
        folder / "server.log",
        API_KEY=KEY,
        EMBED2PROMPT_JOBS_DATABASE=str(folder / "jobs.sqlite3"),
        EMBED2PROMPT_REFINEMENT_STEPS="0",
        EMBED2PROMPT_GENERATION_MAX_TOKENS="16",
        EMBED2PROMPT_MAX_EMBEDDINGS_PER_REQUEST="4",
        EMBED2PROMPT_MAX_REQUEST_BYTES="200000",
    )
    yield started
    started.process.terminate()
    started.process.wait(timeout=60)


def _request(
    url: str, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, object]:
    data = None
    if body is not None:
        # bytes as they are, an iterator of bytes chunked, anything else as JSON
        data = body if isinstance(body, bytes | Iterator) else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


@pytest.fixture(scope="module")
def vectors() -> list[list[float]]:
    texts = ["How do I reset my password?", "Write a short poem about the sea."]
    return LocalEmbedder().embed_sync(texts).tolist()


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_health_is_open_and_reports_the_models(service: Service) -> None:
    status, body = _request(service.url, "GET", "/health")
    assert status == 200
    assert isinstance(body, dict)
    assert body["status"] == "ok"
    assert body["backends"]["generator"] == {"kind": "local"}
    assert body["embedder"] == "all-MiniLM-L6-v2"
    assert body["dimension"] == 384


def test_the_api_key_is_required_and_accepted_both_ways(
    service: Service, vectors: list[list[float]]
) -> None:
    request = {"embeddings": vectors[:1], "evaluate_quality": False}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
        status, body = _request(service.url, "POST", "/generate_prompts_parallel", request, headers)
        assert status == 401
        assert "API key" in str(body)
    for headers in (AUTH, {"X-API-Key": KEY}):
        status, _ = _request(service.url, "POST", "/generate_prompts_parallel", request, headers)
        assert status == 200


@pytest.mark.slow
def test_the_seeds_request_gets_the_seeds_response(
    service: Service, vectors: list[list[float]]
) -> None:
    request = {
        "embeddings": vectors,
        "max_concurrent": 2,
        "rate_limit_tier": "tier_2",
        "evaluate_quality": True,
        "generate_variants": False,
        "return_metadata": True,
    }
    status, body = _request(service.url, "POST", "/generate_prompts_parallel", request, AUTH)
    assert status == 200, body
    assert isinstance(body, dict)
    assert set(body) == {"results", "summary", "metadata"}
    for index, result in enumerate(body["results"]):
        assert result["embedding_index"] == index
        assert result["original_prompt"]
        original = result["original_result"]
        assert original["success"] is True
        assert -1 <= original["similarity"] <= 1
        assert result["variants"] == []
        assert result["best_variant"] is None
    assert body["summary"]["total_processed"] == 2
    assert body["metadata"]["performance_metrics"]["requests_per_second"] > 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"embeddings": [[NaN' + b", 0.1" * 383 + b"]]}", "embedding 0 contains NaN"),
        ({"embeddings": [[0.1] * 384, [0.1] * 100]}, "embedding 1 has shape"),
        ({"embeddings": [[0.0] * 384]}, "embedding 0 is all zeros"),
        ({"embeddings": [[0.1] * 384] * 5}, "at most 4"),
        ({"embeddings": []}, "at least 1"),
        ({"embeddings": [["a"] * 384]}, "valid number"),
        ({"embeddings": [[0.1] * 384], "max_concurrent": 51}, "less than or equal to 50"),
        ({"embeddings": [[0.1] * 384], "max_concurrent": 0}, "greater than or equal to 1"),
        ({"embeddings": [[0.1] * 384], "rate_limit_tier": "tier_9"}, "tier_1"),
        ({"embeddings": [[0.1] * 384], "unknown": 1}, "Extra inputs"),
        (b"not json", "JSON"),
        (b'{"embeddings": [[1e400' + b", 0.1" * 383 + b"]]}", "embedding 0 contains NaN or inf"),
        (
            {"embeddings": [[0.1] * 384, [1e308] * 384]},
            "embedding 1 contains 1e+308, beyond float32's range",
        ),
        ({"embeddings": [[1e-320] + [0.0] * 383]}, "embedding 0 contains a denormal number"),
        ({"embeddings": [["0.1"] * 384]}, "valid number"),
        ({"embeddings": [[True] * 384]}, "valid number"),
        ({"embeddings": [[0.1] * 384], "max_concurrent": "5"}, "valid integer"),
    ],
)
def test_bad_input_is_a_422_naming_the_problem(
    service: Service, payload: object, message: str
) -> None:
    for path in ("/generate_prompts_parallel", "/jobs"):
        if path == "/jobs" and "at most 4" in message:
            continue  # the limit of one request, not of a job
        status, body = _request(service.url, "POST", path, payload, AUTH)
        assert status == 422, (path, body)
        assert isinstance(body, dict)
        assert isinstance(body["detail"], str)  # the one error shape
        assert message in body["detail"]


def test_a_chunked_body_over_the_limit_is_a_413(service: Service) -> None:
    def chunks() -> Iterator[bytes]:  # no length: urllib sends it chunked
        yield b'{"embeddings": [['
        for _ in range(40):
            yield b"0.1, " * 2000
        yield b"0.1]]}"

    for path in ("/generate_prompts_parallel", "/jobs"):
        status, body = _request(service.url, "POST", path, chunks(), AUTH)
        assert status == 413, body  # was a 400
        assert "max_request_bytes" in str(body)


def test_without_the_key_a_large_body_is_answered_401_unread(service: Service) -> None:
    """The 401 goes out before the body is read; on a kept-alive connection the server
    drops the rest of the body, and the client, once it has sent it, reads the 401.
    (urllib asks to close the connection, which the server then does at once.)"""
    huge = b"[" * 8_000_000  # over the limit and not JSON: neither matters without the key
    host, port = service.url.removeprefix("http://").split(":")
    for path in ("/generate_prompts_parallel", "/jobs", "/jobs/upload"):
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            connection.request("POST", path, huge, {"Content-Type": "application/json"})
            response = connection.getresponse()
            status, body = response.status, json.loads(response.read())
        finally:
            connection.close()
        assert status == 401, (path, body)
        assert body["detail"].startswith("missing or invalid API key")


def test_a_body_over_the_limit_is_refused_before_it_is_read(service: Service) -> None:
    huge = {"embeddings": [[math.pi] * 384] * 400}
    status, body = _request(service.url, "POST", "/generate_prompts_parallel", huge, AUTH)
    assert status == 413
    assert "max_request_bytes" in str(body)


def test_docs_and_schema_are_served(service: Service) -> None:
    status, schema = _request(service.url, "GET", "/openapi.json")
    assert status == 200
    assert isinstance(schema, dict)
    assert "/generate_prompts_parallel" in schema["paths"]
    request = urllib.request.Request(service.url + "/docs")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_the_key_never_reaches_the_log(service: Service) -> None:
    _request(service.url, "POST", "/generate_prompts_parallel", {"embeddings": []}, AUTH)
    assert KEY not in service.log.read_text()


def test_vectors_from_numpy_round_trip(service: Service, vectors: list[list[float]]) -> None:
    request = {"embeddings": np.asarray(vectors[:1]).tolist(), "evaluate_quality": False}
    status, body = _request(service.url, "POST", "/generate_prompts_parallel", request, AUTH)
    assert status == 200
    assert isinstance(body, dict)
    assert body["results"][0]["original_result"]["prompt_similarity"] > 0.2


def _script(
    name: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, name],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_seeds_example_client_talks_to_the_service(service: Service) -> None:
    result = _script("run_parallel_example.py", {"API_BASE_URL": service.url, "API_KEY": KEY})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("prompt:") == 4
    assert '"total_processed": 4' in result.stdout


def test_the_seeds_example_says_when_the_service_is_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _script("run_parallel_example.py", {"API_BASE_URL": url})
    assert result.returncode == 1
    assert f"cannot reach the service at {url}" in result.stdout
    assert "python api/app.py" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_seeds_comprehensive_check_passes() -> None:
    # The environment's settings, the checkpoint's path among them (the small decoder: fast).
    fast = {
        "EMBED2PROMPT_REFINEMENT_STEPS": "0",
        "EMBED2PROMPT_GENERATION_MAX_TOKENS": "16",
        "EMBED2PROMPT_MODEL_PATH": "models/small_model.pt",
    }
    result = _script("test_parallel_processing.py", fast)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "1. generated 10 test embeddings (all-MiniLM-L6-v2), inverted by models/small_model.pt",
        "2. processed in parallel",
        "2. processed sequentially",
        "3. speedup",
        "4. performance",
        "5. sample results",
        "all checks passed",
    ):
        assert step in result.stdout


def _wait_for(service: Service, job_id: str, done: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 300
    while True:
        status, body = _request(service.url, "GET", f"/jobs/{job_id}", headers=AUTH)
        assert status == 200, body
        assert isinstance(body, dict)
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)  # polling a job that runs in another process


def test_jobs_run_in_the_background_and_page_their_results(
    service: Service, vectors: list[list[float]]
) -> None:
    request = {"embeddings": vectors * 3, "evaluate_quality": False, "max_concurrent": 2}
    status, job = _request(service.url, "POST", "/jobs", request, AUTH)
    assert status == 202, job
    assert isinstance(job, dict)
    assert job["total"] == 6
    final = _wait_for(service, job["id"], lambda body: body["state"] == "completed")
    assert (final["done"], final["succeeded"], final["failed"]) == (6, 6, 0)
    status, page = _request(
        service.url, "GET", f"/jobs/{job['id']}/results?offset=2&limit=3", headers=AUTH
    )
    assert status == 200
    assert isinstance(page, dict)
    assert [r["embedding_index"] for r in page["results"]] == [2, 3, 4]
    assert page["next_offset"] == 5
    lines = urllib.request.urlopen(
        urllib.request.Request(
            f"{service.url}/jobs/{job['id']}/results?format=jsonl", headers=AUTH
        ),
        timeout=30,
    ).read()
    rows = [json.loads(line) for line in lines.splitlines()]
    assert [row["embedding_index"] for row in rows] == list(range(6))


def test_job_errors_and_unknown_jobs(service: Service) -> None:
    bad = {"embeddings": [[0.1] * 384, [float("inf")] + [0.1] * 383]}
    status, body = _request(service.url, "POST", "/jobs", bad, AUTH)
    assert status == 422
    assert "embedding 1 contains NaN or infinite" in str(body)
    for method, path in (
        ("GET", "/jobs/nope"),
        ("GET", "/jobs/nope/results"),
        ("DELETE", "/jobs/nope"),
    ):
        status, body = _request(service.url, method, path, headers=AUTH)
        assert status == 404, (method, path, body)
        assert body == {"detail": "no job 'nope'"}
    status, body = _request(service.url, "GET", "/jobs/" + "x" * 5000, headers=AUTH)
    assert (status, body) == (404, {"detail": "no job with that id"})  # bounded echo
    status, _ = _request(service.url, "GET", "/jobs/nope")
    assert status == 401


def _stored_rows(service: Service, job_id: str) -> tuple[int, int]:
    """(jobs rows, input rows) in the service's database for this job."""
    with sqlite3.connect(service.log.parent / "jobs.sqlite3") as db:
        (jobs,) = db.execute("SELECT COUNT(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()
        (inputs,) = db.execute(
            "SELECT COUNT(*) FROM job_inputs WHERE job_id = ?", (job_id,)
        ).fetchone()
    return jobs, inputs


def test_a_job_uploads_as_json_lines_with_options_in_the_query(
    service: Service, vectors: list[list[float]]
) -> None:
    lines = [
        json.dumps(vectors[0]),
        "",  # blank lines are skipped
        json.dumps({"id": "b", "embedding": vectors[1]}),
        json.dumps(vectors[0]),
    ]
    status, job = _request(
        service.url,
        "POST",
        "/jobs/upload?evaluate_quality=false&max_concurrent=2",
        "\n".join(lines).encode(),
        {**AUTH, "Content-Type": "application/x-ndjson"},
    )
    assert status == 202, job
    assert isinstance(job, dict)
    assert job["total"] == 3
    assert job["options"]["evaluate_quality"] is False
    assert job["options"]["max_concurrent"] == 2
    final = _wait_for(service, job["id"], lambda body: body["state"] == "completed")
    assert (final["done"], final["succeeded"]) == (3, 3)
    status, page = _request(service.url, "GET", f"/jobs/{job['id']}/results", headers=AUTH)
    assert isinstance(page, dict)
    prompts = [row["original_prompt"] for row in page["results"]]
    assert prompts[0] == prompts[2] != prompts[1]  # rows kept their order


@pytest.mark.slow
def test_a_job_of_100000_embeddings_uploads_as_float32_rows(service: Service) -> None:
    rows = np.random.default_rng(7).normal(size=(100_000, 384)).astype("<f4")
    status, job = _request(
        service.url,
        "POST",
        "/jobs/upload?evaluate_quality=false",
        rows.tobytes(),
        {**AUTH, "Content-Type": "application/octet-stream"},
    )
    assert status == 202, job
    assert isinstance(job, dict)
    assert job["total"] == 100_000
    assert _stored_rows(service, job["id"]) == (1, 100_000)
    status, cancelled = _request(service.url, "DELETE", f"/jobs/{job['id']}", headers=AUTH)
    assert status == 200
    assert isinstance(cancelled, dict)
    assert cancelled["state"] == "cancelled"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _parquet(embeddings: list[list[object]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"embedding": embeddings}), buffer)
    return buffer.getvalue()


def _bad_dimension_at_1030() -> bytes:
    good = [json.dumps([0.5] * 384)] * 1030
    return "\n".join([*good, "[0.5, 0.5, 0.5]", *good[:3]]).encode()


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        (
            "application/x-ndjson",
            b"[0.1]\nnot json\n",
            422,
            "line 2 (embedding 1) is not valid JSON (Expecting value); expected an array",
        ),
        (
            "application/x-ndjson",
            json.dumps({"vector": [0.1]}).encode(),
            422,
            'line 1 (embedding 0) has no "embedding" field',
        ),
        (
            "application/x-ndjson",
            _bad_dimension_at_1030(),
            422,
            "line 1031: embedding 1030 has shape (3,)",
        ),
        ("application/x-ndjson", b"\n\n", 422, "the upload holds no embeddings"),
        (
            "application/octet-stream",
            np.ones((2, 384), dtype="<f4").tobytes() + b"\0\0",
            422,
            "2 bytes that are not a whole row",
        ),
        (
            "application/octet-stream",
            np.full((1, 384), np.nan, dtype="<f4").tobytes(),
            422,
            "embedding 0 contains NaN",
        ),
        (
            "application/x-ndjson",
            (json.dumps([0.5] * 384) + "\n" + json.dumps([1e308] * 384)).encode(),
            422,
            "line 2: embedding 1 contains 1e+308, beyond float32's range",
        ),
        (
            "application/x-ndjson",
            json.dumps([5e-324] * 384).encode(),
            422,
            "line 1: embedding 0 contains a denormal number",
        ),
        (  # numbers as text are refused in an upload as in a JSON body, not coerced
            "application/x-ndjson",
            (json.dumps([0.5] * 384) + "\n" + json.dumps(["0.1"] * 384)).encode(),
            422,
            "line 2: embedding 1 is not a list of numbers: item 0 is a string",
        ),
        (  # an integer too long for a float: infinite, as 1e400 is (it was a 500)
            "application/x-ndjson",
            ("[" + "9" * 5000 + ", 0.1" * 383 + "]").encode(),
            422,
            "line 1: embedding 0 contains NaN or infinite values",
        ),
        (  # complex numbers: NumPy dropped the imaginary part, and the job ran
            "application/x-npy",
            _npy(np.ones((2, 384), dtype=np.complex64)),
            422,
            "the upload: expected real numbers (a float or integer dtype), got dtype complex64",
        ),
        (  # text and booleans in a Parquet file: NumPy read "0.1" as 0.1 and True as 1
            "application/vnd.apache.parquet",
            _parquet([["0.1"] * 384]),
            422,
            "the upload: the 'embedding' column holds list<element: string>; expected a list",
        ),
        (
            "application/vnd.apache.parquet",
            _parquet([[True] * 384]),
            422,
            "the upload: the 'embedding' column holds list<element: bool>; expected a list",
        ),
        ("text/csv", b"0.1,0.2", 415, "application/x-ndjson"),
    ],
)
def test_a_bad_upload_is_refused_naming_the_problem_and_leaves_nothing(
    service: Service, content_type: str, body: bytes, status: int, message: str
) -> None:
    with sqlite3.connect(service.log.parent / "jobs.sqlite3") as db:
        (before,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
    got, answer = _request(
        service.url, "POST", "/jobs/upload", body, {**AUTH, "Content-Type": content_type}
    )
    assert got == status, answer
    assert message in str(answer)
    with sqlite3.connect(service.log.parent / "jobs.sqlite3") as db:
        (after,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        (uploading,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'uploading'").fetchone()
    assert (after, uploading) == (before, 0)


@pytest.mark.slow
def test_a_job_killed_mid_way_resumes_on_restart_without_loss_or_repeats(
    tmp_path: Path, vectors: list[list[float]]
) -> None:
    settings = {  # the small decoder: what is tested is the restart, not the prompts
        "EMBED2PROMPT_JOBS_DATABASE": str(tmp_path / "jobs.sqlite3"),
        "EMBED2PROMPT_MODEL_PATH": str(ROOT / SMALL_MODEL),
        "EMBED2PROMPT_REFINEMENT_STEPS": "2",
        "EMBED2PROMPT_GENERATION_MAX_TOKENS": "24",
    }
    log = tmp_path / "server.log"
    first = _start(log, **settings)
    request = {"embeddings": vectors * 6, "max_concurrent": 2}
    try:
        status, job = _request(first.url, "POST", "/jobs", request)
        assert status == 202
        assert isinstance(job, dict)
        _wait_for(first, job["id"], lambda body: body["done"] >= 3)
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    before = dict(database.execute("SELECT idx, result FROM job_results").fetchall())
    database.close()
    assert 3 <= len(before) < 12  # killed mid-way

    second = _start(log, **settings)
    try:
        final = _wait_for(second, job["id"], lambda body: body["state"] == "completed")
        status, page = _request(second.url, "GET", f"/jobs/{job['id']}/results?limit=100")
    finally:
        second.process.terminate()
        second.process.wait(timeout=60)
    assert (final["done"], final["succeeded"]) == (12, 12)
    assert isinstance(page, dict)
    assert [r["embedding_index"] for r in page["results"]] == list(range(12))
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    after = dict(database.execute("SELECT idx, result FROM job_results").fetchall())
    assert {idx: after[idx] for idx in before} == before  # finished items were not redone
    assert "resuming job" in log.read_text()


@pytest.mark.slow
def test_a_cancelled_job_stops_and_keeps_what_it_finished(
    service: Service, vectors: list[list[float]]
) -> None:
    request = {"embeddings": vectors * 8, "max_concurrent": 1}  # with evaluation: slow
    status, job = _request(service.url, "POST", "/jobs", request, AUTH)
    assert status == 202
    assert isinstance(job, dict)
    _wait_for(service, job["id"], lambda body: body["done"] >= 1)
    status, cancelled = _request(service.url, "DELETE", f"/jobs/{job['id']}", headers=AUTH)
    assert status == 200
    assert isinstance(cancelled, dict)
    assert cancelled["state"] == "cancelled"
    assert 1 <= cancelled["done"] < 16
    status, again = _request(service.url, "GET", f"/jobs/{job['id']}", headers=AUTH)
    assert isinstance(again, dict)
    assert again["done"] == cancelled["done"]  # nothing ran after the cancel


def test_metrics_count_requests_items_and_latencies(
    service: Service, vectors: list[list[float]]
) -> None:
    request = {"embeddings": vectors[:1], "evaluate_quality": False}
    _request(service.url, "POST", "/generate_prompts_parallel", request, AUTH)
    status, _ = _request(service.url, "GET", "/metrics")
    assert status == 401
    raw = (
        urllib.request.urlopen(
            urllib.request.Request(f"{service.url}/metrics", headers=AUTH), timeout=30
        )
        .read()
        .decode()
    )
    assert (
        'embed2prompt_http_requests_total{method="POST",route="/generate_prompts_parallel",'
        'status="200"}' in raw
    )
    assert 'embed2prompt_items_total{outcome="success"}' in raw
    assert "embed2prompt_http_request_duration_seconds_bucket" in raw
    assert "gen_ai_client_token_usage_total" in raw


def test_health_probes_an_api_backend(server: OpenAITestServer) -> None:
    settings = Settings(
        generator="openai", openai_api_key=SecretStr(TEST_KEY), openai_base_url=server.url
    )
    report = asyncio.run(backends(settings)).model_dump()
    assert report["embedder"] == {"kind": "local", "reachable": True, "authorised": True}
    assert report["generator"]["reachable"] is True
    assert report["generator"]["status"] == 200
    unreachable = settings.model_copy(
        update={"openai_base_url": f"http://127.0.0.1:{free_port()}/v1"}
    )
    report = asyncio.run(backends(unreachable)).model_dump()
    assert report["generator"]["reachable"] is False
    assert TEST_KEY not in json.dumps(report)


def test_the_readiness_probe_sends_the_base_urls_query(server: OpenAITestServer) -> None:
    """An Azure-style ``?api-key=...`` in the base URL: the probe dropped the query, so
    it reported an answer the API calls themselves would not get."""
    key = "query-key-SECRET-31c9"
    server.configure(required_query={"api-key": key})
    settings = Settings(
        generator="openai",
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=f"{server.url}/?api-key={key}",
    )
    report = asyncio.run(backends(settings)).generator.model_dump()
    assert (report["reachable"], report["authorised"], report["status"]) == (True, True, 200)
    assert report["base_url"] == f"{server.url}/?***"
    without = settings.model_copy(update={"openai_base_url": server.url})
    refused = asyncio.run(backends(without)).generator.model_dump()
    # It answers, and refuses every call: /ready says not ready.
    assert (refused["reachable"], refused["authorised"], refused["status"]) == (True, False, 401)
    assert key not in json.dumps(report)


@pytest.mark.slow
def test_sigterm_lets_requests_in_progress_finish(
    tmp_path: Path, server: OpenAITestServer, vectors: list[list[float]]
) -> None:
    server.configure(latency_ms=1500)  # each generation takes 1.5 s at the API
    service = _start(
        tmp_path / "server.log",
        EMBED2PROMPT_GENERATOR="openai",
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=server.url,
        EMBED2PROMPT_REFINEMENT_STEPS="0",
        EMBED2PROMPT_JOBS_DATABASE=str(tmp_path / "jobs.sqlite3"),
    )
    outcome: list[tuple[int, object]] = []
    request = {"embeddings": vectors, "max_concurrent": 1}
    client = threading.Thread(
        target=lambda: outcome.append(
            _request(service.url, "POST", "/generate_prompts_parallel", request)
        )
    )
    client.start()
    deadline = time.monotonic() + 60
    while server.stats(arrivals=False)["requests"] == 0:  # the request is at the API now
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling another process
    service.process.send_signal(signal.SIGTERM)
    client.join(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal, as a process should
    assert service.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in service.log.read_text()
    ((status, body),) = outcome
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["summary"]["successful"] == 2  # both items, the second one after SIGTERM


def test_json_lines_split_anywhere_parse_the_same() -> None:
    from embed2prompt.service.uploads import JSON_LINES, read_vectors

    rows = [[float(i + 1), 2.0, 3.0] for i in range(5)]
    body = ("\n".join(json.dumps(row) for row in rows) + "\n\n").encode() + b"[9, 9, 9]"

    async def parse(size: int) -> list[list[float]]:
        async def chunks():  # type: ignore[no-untyped-def]
            for start in range(0, len(body), size):
                yield body[start : start + size]

        vectors = [v async for batch in read_vectors(chunks(), JSON_LINES, 3, 100) for v in batch]
        return [list(map(float, vector)) for vector in vectors]

    whole = asyncio.run(parse(len(body)))
    assert len(whole) == 6
    for size in (1, 2, 7, 64):
        assert asyncio.run(parse(size)) == whole


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[0.1, 0.2]", "line 4: embedding 2 has shape (2,)"),
        ("[NaN, 1, 1]", "line 4: embedding 2 contains NaN"),
        ("[0, 0, 0]", "line 4: embedding 2 is all zeros"),
        ('{"embedding": [1e-320, 1, 1]}', "line 4: embedding 2 contains a denormal number"),
        ("[1e308, 1e308, 1e308]", "line 4: embedding 2 contains 1e+308, beyond"),
        ('[1, "a", 1]', "line 4: embedding 2 is not a list of numbers: item 1 is a string"),
        # Strict, as the JSON bodies are: neither text nor booleans pass as numbers.
        ('["0.1", "0.2", "0.3"]', "line 4: embedding 2 is not a list of numbers: item 0 is a"),
        ("[1, true, 1]", "line 4: embedding 2 is not a list of numbers: item 1 is a boolean"),
        ('{"embedding": [1, 1, null]}', "line 4: embedding 2 is not a list of numbers: item 2"),
        ("[[1], 1, 1]", "line 4: embedding 2 is not a list of numbers: item 0 is an array"),
        # Integers past float's range are infinite, as 1e400 is (they were 500s: NumPy's
        # OverflowError, and int()'s limit of 4,300 digits).
        ("[1" + "0" * 400 + ", 1, 1]", "line 4: embedding 2 contains NaN or infinite values"),
        ("[" + "9" * 5000 + ", 1, 1]", "line 4: embedding 2 contains NaN or infinite values"),
        ("[" * 100_000 + "]" * 100_000, "line 4 (embedding 2) is nested too deeply"),
    ],
)
def test_an_upload_error_names_the_line_as_well_as_the_index(line: str, message: str) -> None:
    """Blank lines are skipped, so the line and the index differ: both are named."""
    from embed2prompt.errors import InputError
    from embed2prompt.service.uploads import JSON_LINES, read_vectors

    body = f"[1, 2, 3]\n\n[4, 5, 6]\n{line}\n[7, 8, 9]\n".encode()

    async def upload() -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield body

        async for _ in read_vectors(chunks(), JSON_LINES, 3, 100):
            pass

    with pytest.raises(InputError) as refused:
        asyncio.run(upload())
    assert str(refused.value).startswith(message)

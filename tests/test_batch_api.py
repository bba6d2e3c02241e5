"""``invert --batch-api`` and jobs in ``"mode": "batch"``, end to end against the local
server's Batch API through the official SDK: the same rows as the synchronous pipeline
(with the local embedder, and with embeddings batched to ``/v1/embeddings``), costs up
front, faults resubmitted alone, the queue limit kept, the run's files deleted at the
server once joined (or kept), a cancel and a resume, the service's jobs and their
cancel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from embed2prompt.batch_api.state import RunState
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.model_paths import SMALL_MODEL, locate_model
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer
from tests.conftest import TEST_KEY
from tests.test_cli import run

pytestmark = pytest.mark.slow  # Batch API runs wait on the local server's batches

TEXTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "Explain how a hash table works.",
    "What is the capital of France?",
]
# Polls every 50 ms instead of minutes: the local server's batches end in about a second.
FAST_POLLS = {
    "OPENAI_API_KEY": TEST_KEY,
    "EMBED2PROMPT_BATCH_POLL_INITIAL_S": "0.05",
    "EMBED2PROMPT_BATCH_POLL_MAX_S": "0.2",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "vectors.npy"
    np.save(path, LocalEmbedder().embed_sync(TEXTS))
    return path


# The small decoder: the counts of requests and batches below are its rows'.
INVERTER = str(locate_model(SMALL_MODEL))


def invert_args(server: OpenAITestServer, source: Path, output: Path, *more: str) -> list[str]:
    return [
        "invert", str(source), "-o", str(output), "--steps", "0", "--no-progress",
        "--evaluate", "--variants", "3", "--generator", "openai", "--base-url", server.url,
        "--inverter", INVERTER, *more,
    ]  # fmt: skip


def records(path: Path) -> dict[int, dict[str, Any]]:
    return {row["index"]: row for row in map(json.loads, path.read_text().splitlines())}


def batch_stats(server: OpenAITestServer) -> dict[str, Any]:
    stats: dict[str, Any] = server.stats(arrivals=False)["batch"]
    return stats


def assert_each_request_once(server: OpenAITestServer, state: Path) -> None:
    """No file uploaded twice, no request run twice, one batch per input file."""
    stats = batch_stats(server)
    assert stats["filenames_uploaded_twice"] == []
    assert stats["custom_ids_submitted_twice"] == []
    run_state = RunState(state)
    try:
        files = run_state.files()
    finally:
        run_state.close()
    assert stats["batches_created"] == len(files) == len({f.batch_id for f in files})
    assert all(f.step == "joined" for f in files)


def without_times(rows: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {
        index: {key: value for key, value in row.items() if key != "processing_time"}
        for index, row in rows.items()
    }


def test_the_batch_api_writes_the_rows_the_synchronous_pipeline_writes(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    server.configure(batch_delay_s=0.2)
    output = tmp_path / "batch.jsonl"
    env = {**FAST_POLLS, "EMBED2PROMPT_BATCH_MAX_REQUESTS_PER_FILE": "5"}
    done = run(*invert_args(server, source, output, "--batch-api"), env=env)
    assert done.returncode == 0, done.stderr
    # The costs come first, before anything is uploaded.
    estimate = done.stderr.index("stage 1 exact")
    assert estimate < done.stderr.index("uploading")
    assert "generate" in done.stderr
    assert "batch $" in done.stderr
    stats = batch_stats(server)
    assert stats["requests_submitted"] == stats["distinct_custom_ids"]
    # 4 rows: 12 generations (the original and 2 runners-up each) in 3 files of 5 at
    # most, then a rewrite, its evaluation (4 each); the embeddings run locally.
    assert stats["batches_created"] == 5
    assert_each_request_once(server, tmp_path / "batch.jsonl.batch-api" / "state.sqlite3")
    # Once joined, each batch's input and output files are deleted at the server.
    assert (stats["files_held"], stats["files_deleted"]) == ({}, 5 + 5)
    synchronous = tmp_path / "sync.jsonl"
    done = run(*invert_args(server, source, synchronous), env=FAST_POLLS)
    assert done.returncode == 0, done.stderr
    assert without_times(records(output)) == without_times(records(synchronous))
    assert all(row["best_variant"] for row in records(output).values())
    status = run(*invert_args(server, source, output, "--batch-api", "--status"), env=FAST_POLLS)
    assert status.returncode == 0, status.stderr
    assert "rows: 4, inverted 4, finished 4" in status.stdout
    assert "stage generate: 12 done" in status.stdout
    assert status.stdout.count("joined") == 5
    assert status.stdout.count("files deleted at the API") == 5


def test_embeddings_go_to_v1_embeddings_batches_with_the_openai_embedder(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    server.configure(batch_delay_s=0.2)
    # text-embedding-3-small shortened to the inverter's 384 dimensions.
    env = {**FAST_POLLS, "EMBED2PROMPT_EMBEDDING_DIMENSIONS": "384"}
    openai_embedder = ("--embedder", "openai", "--embedding-model", "text-embedding-3-small")
    output = tmp_path / "batch.jsonl"
    done = run(*invert_args(server, source, output, "--batch-api", *openai_embedder), env=env)
    assert done.returncode == 0, done.stderr
    stats = batch_stats(server)
    # generate, rewrite and rewrite-evaluate as chat batches; embed and rewrite-embed as
    # embeddings batches, each request once.
    assert stats["batches_by_endpoint"] == {"/v1/chat/completions": 3, "/v1/embeddings": 2}
    assert stats["custom_ids_submitted_twice"] == []
    costs = done.stderr[: done.stderr.index("uploading")]
    assert "text-embedding-3-small" in costs  # the embeddings' cost up front too
    synchronous = tmp_path / "sync.jsonl"
    done = run(*invert_args(server, source, synchronous, *openai_embedder), env=env)
    assert done.returncode == 0, done.stderr
    assert without_times(records(output)) == without_times(records(synchronous))
    assert all(row["similarity"] is not None for row in records(output).values())


def test_a_base_url_with_a_query_reaches_the_files_and_batches_endpoints(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    """Azure-style deployments authenticate by query string: uploads, batches and their
    files carry it as the synchronous calls do, and it never shows in the output."""
    query = {"api-key": "query-secret-5f3a", "api-version": "2024-10-21"}
    server.configure(batch_delay_s=0.2, required_query=query)
    output = tmp_path / "batch.jsonl"
    arguments = invert_args(server, source, output, "--batch-api")
    base_url = arguments.index("--base-url") + 1
    arguments[base_url] += "?api-key=query-secret-5f3a&api-version=2024-10-21"
    done = run(*arguments, env=FAST_POLLS)
    assert done.returncode == 0, done.stderr
    assert sorted(records(output)) == list(range(len(TEXTS)))
    assert all(row["best_variant"] for row in records(output).values())
    assert_each_request_once(server, tmp_path / "batch.jsonl.batch-api" / "state.sqlite3")
    assert "query-secret-5f3a" not in done.stdout + done.stderr + output.read_text()
    server.configure(required_query=None)


def test_failed_expired_and_failing_requests_are_resubmitted_alone_then_recorded(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    # The first batch fails validation (all of it sent again), the second expires with
    # half its requests run (the other half sent again), and every rewrite request
    # fails, is sent twice more (batch_max_resubmits=2), then is the variant's error.
    server.configure(batch_fail_next=1, batch_expire_next=1, batch_error_match="natural request")
    output = tmp_path / "prompts.jsonl"
    env = {**FAST_POLLS, "EMBED2PROMPT_BATCH_MAX_RESUBMITS": "2"}
    done = run(*invert_args(server, source, output, "--batch-api"), env=env)
    assert done.returncode == 0, done.stderr  # the rows succeed; their rewrites failed
    rows = records(output)
    assert sorted(rows) == [0, 1, 2, 3]
    assert all(row["success"] and row["similarity"] is not None for row in rows.values())
    stats = batch_stats(server)
    assert stats["custom_ids_submitted_twice"] == []
    # 12 generations: 6 ran in the expired batch, the 6 it never ran went again alone;
    # 4 rewrites, each tried three times.
    assert stats["requests_submitted"] == 12 + 4 * 3
    assert stats["statuses"] == {"failed": 1, "expired": 1, "completed": 4}  # 1 + 3 rewrites
    state = RunState(tmp_path / "prompts.jsonl.batch-api" / "state.sqlite3")
    try:
        failed = state.db.execute(
            "SELECT key, error, failures FROM requests WHERE status = 'failed'"
        ).fetchall()
        sizes = [f.requests for f in state.files()]
    finally:
        state.close()
    assert sizes[:3] == [12, 12, 6]  # failed, expired, the unrun half alone
    assert len(failed) == 4
    assert all(error.startswith("HTTP 500: The server had an error") for _, error, _ in failed)
    assert {failures for *_, failures in failed} == {3}


def test_the_queue_limit_cuts_submissions_and_is_never_passed(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    limit = 150  # input tokens: about 4 generations' worth
    server.configure(batch_queue_tokens=limit, batch_delay_s=0.3)
    output = tmp_path / "prompts.jsonl"
    env = {**FAST_POLLS, "EMBED2PROMPT_BATCH_QUEUE_TOKENS": str(limit)}
    done = run(*invert_args(server, source, output, "--batch-api", "--keep-batch-files"), env=env)
    assert done.returncode == 0, done.stderr
    stats = batch_stats(server)
    assert "failed" not in stats["statuses"]  # never refused by the server
    # Asked to keep them: every batch's input and output file is still at the server.
    batches = stats["batches_created"]
    assert stats["files_held"] == {"batch": batches, "batch_output": batches}
    assert stats["files_deleted"] == 0
    assert stats["peak_enqueued_tokens"]["gpt-4o-mini"] <= limit
    assert stats["batches_created"] >= 5  # the 12 generations alone took 3 or more
    assert sorted(records(output)) == [0, 1, 2, 3]


def test_batch_api_needs_evaluation_and_the_openai_generator(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    output = tmp_path / "prompts.jsonl"
    args = invert_args(server, source, output, "--batch-api")
    done = run(*[a for a in args if a != "--evaluate"], env=FAST_POLLS)
    assert done.returncode == 2
    assert "needs --evaluate" in done.stderr
    assert "Traceback" not in done.stderr
    done = run(*[a if a != "openai" else "local" for a in args], env=FAST_POLLS)
    assert done.returncode == 2
    assert "--generator openai" in done.stderr
    for action in ("--status", "--cancel"):
        done = run(*invert_args(server, source, tmp_path / "none.jsonl", action))
        assert done.returncode == 2
        assert "no Batch API run here yet" in done.stderr
    assert not list(tmp_path.glob("none.jsonl*"))  # nothing written


def service_settings(server: OpenAITestServer, folder: Path) -> Settings:
    """A service whose generator is the local server's, its jobs in ``folder``."""
    return Settings(
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=server.url,
        generator="openai",
        refinement_steps=0,
        model_path=INVERTER,
        jobs_database=str(folder / "jobs.sqlite3"),
        batch_poll_initial_s=0.05,
        batch_poll_max_s=0.2,
    )


def batch_job(source: Path) -> dict[str, Any]:
    return {"embeddings": np.load(source).tolist(), "mode": "batch", "generate_variants": True}


def test_a_job_in_batch_mode_survives_a_restart_and_stores_every_row(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    from fastapi.testclient import TestClient

    from embed2prompt.service.app import create_app

    server.configure(batch_delay_s=1.5)
    settings = service_settings(server, tmp_path)
    body = batch_job(source)
    with TestClient(create_app(settings)) as client:
        refused = client.post("/jobs", json={**body, "evaluate_quality": False})
        assert refused.status_code == 422
        assert "evaluate_quality" in refused.json()["detail"]
        job = client.post("/jobs", json=body).json()
        assert job["options"]["mode"] == "batch"
        deadline = time.monotonic() + 120
        while not batch_stats(server)["batches_created"]:  # submitted: stop the server
            status = client.get(f"/jobs/{job['id']}").json()
            assert status["state"] in ("queued", "running"), status  # a failed job says why
            assert time.monotonic() < deadline, status
            time.sleep(0.05)  # polling another process
    with TestClient(create_app(settings)) as client:  # the job resumes on start-up
        while (status := client.get(f"/jobs/{job['id']}").json())["state"] != "completed":
            assert status["state"] == "running", status
            assert time.monotonic() < deadline
            time.sleep(0.05)
        results = client.get(f"/jobs/{job['id']}/results").json()["results"]
    assert status["done"] == status["succeeded"] == 4
    assert status["batch_api"]["final"] == 4
    assert [row["embedding_index"] for row in results] == [0, 1, 2, 3]
    assert all(row["best_variant"] is not None for row in results)
    assert_each_request_once(
        server, tmp_path / "jobs.sqlite3.batch-api" / job["id"] / "state.sqlite3"
    )


def start_batch_job(client: Any, source: Path, server: OpenAITestServer) -> str:
    """A batch-mode job posted through ``client`` (a TestClient), once its batch is in
    progress at the server; its id."""
    job_id: str = client.post("/jobs", json=batch_job(source)).json()["id"]
    deadline = time.monotonic() + 120
    while batch_stats(server)["statuses"].get("in_progress") != 1:
        status = client.get(f"/jobs/{job_id}").json()
        assert status["state"] in ("queued", "running"), status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)  # polling another process
    return job_id


def test_cancelling_a_batch_job_cancels_its_batches_and_deletes_its_files(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    from fastapi.testclient import TestClient

    from embed2prompt.service.app import create_app

    server.configure(batch_delay_s=40.0)  # in progress until cancelled
    with TestClient(create_app(service_settings(server, tmp_path))) as client:
        job_id = start_batch_job(client, source, server)
        answer = client.delete(f"/jobs/{job_id}")
        listed = client.get("/jobs", params={"state": "cancelled"}).json()["jobs"]
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["state"] == "cancelled"
    report = status["batch_api"]
    assert report["cancelled_at"] is not None
    # The batch stopped halfway: its output joined, then its files deleted at the server.
    [file] = report["files"]
    assert (file["status"], file["step"], file["deleted"]) == ("cancelled", "joined", True)
    assert report["stages"][0]["requests"] == {"done": 6, "pending": 6}
    stats = batch_stats(server)
    assert (stats["batches_cancelled"], stats["files_held"]) == (1, {})
    assert [(job["id"], job["mode"]) for job in listed] == [(job_id, "batch")]


def test_one_delete_is_enough_while_the_batches_stop_slowly_even_across_a_restart(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    from fastapi.testclient import TestClient

    from embed2prompt.service.app import create_app

    # In progress until cancelled, then held cancelling (as OpenAI may hold a batch for
    # minutes) until the test lets it go; DELETE answers after 0.3 s of waiting.
    server.configure(batch_delay_s=40.0, batch_cancel_delay_s=3600.0)
    settings = service_settings(server, tmp_path).model_copy(update={"batch_cancel_wait_s": 0.3})
    with TestClient(create_app(settings)) as client:
        job_id = start_batch_job(client, source, server)
        deadline = time.monotonic() + 120
        answer = client.delete(f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        status = answer.json()
        assert status["state"] == "cancelling"
        while status["batch_api"]["files"][0]["status"] != "cancelling":  # asked at the API
            assert status["state"] == "cancelling", status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
            status = client.get(f"/jobs/{job_id}").json()
        [file] = status["batch_api"]["files"]
        assert (file["step"], file["deleted"]) == ("submitted", False)
        listed = client.get("/jobs", params={"state": "cancelling"}).json()["jobs"]
        assert [job["id"] for job in listed] == [job_id]
    # The service stopped with the batch still stopping; the job stays cancelling.
    assert batch_stats(server)["statuses"] == {"cancelling": 1}
    server.configure(batch_cancel_delay_s=0.0)  # the API stops the batch now
    with TestClient(create_app(settings)) as client:  # and a restart goes on waiting
        while (status := client.get(f"/jobs/{job_id}").json())["state"] != "cancelled":
            assert status["state"] == "cancelling", status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    assert status["error"] is None
    report = status["batch_api"]
    # What the batch ran before it stopped is joined, then its files deleted there; the
    # job was not run again (one batch), and the cancel was asked once.
    [file] = report["files"]
    assert (file["status"], file["step"], file["deleted"]) == ("cancelled", "joined", True)
    assert report["stages"][0]["requests"] == {"done": 6, "pending": 6}
    stats = batch_stats(server)
    assert (stats["batches_created"], stats["batches_cancelled"]) == (1, 1)
    assert (stats["files_held"], stats["statuses"]) == ({}, {"cancelled": 1})


def test_a_refused_cancel_is_a_503_and_the_next_delete_stops_the_batches(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    from fastapi.testclient import TestClient

    from embed2prompt.service.app import create_app

    server.configure(batch_delay_s=40.0)  # in progress until cancelled
    with TestClient(create_app(service_settings(server, tmp_path))) as client:
        job_id = start_batch_job(client, source, server)
        deadline = time.monotonic() + 120
        # The key is revoked: the job's next poll is refused, and so is the cancel.
        server.configure(api_key="sk-another-key")
        while (status := client.get(f"/jobs/{job_id}").json())["state"] != "failed":
            assert status["state"] == "running", status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        answer = client.delete(f"/jobs/{job_id}")
        assert answer.status_code == 503, answer.text
        assert "could not be cancelled at the API" in answer.text
        assert "DELETE it again" in answer.text
        assert TEST_KEY not in answer.text
        assert batch_stats(server)["statuses"] == {"in_progress": 1}
        server.configure(api_key=TEST_KEY)
        answer = client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    after = answer.json()
    # A failed job keeps its state and its error; its batch is stopped all the same.
    assert (after["state"], after["error"]) == ("failed", status["error"])
    [file] = after["batch_api"]["files"]
    assert (file["status"], file["step"], file["deleted"]) == ("cancelled", "joined", True)
    stats = batch_stats(server)
    assert (stats["batches_cancelled"], stats["files_held"]) == (1, {})

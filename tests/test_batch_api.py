"""``invert --batch-api`` and jobs in ``"mode": "batch"``, end to end against the local
server's Batch API through the official SDK: the same rows as the synchronous pipeline,
costs up front, faults resubmitted alone, the queue limit kept, the service's jobs."""

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
from embed2prompt.settings import Settings
from embed2prompt.testing import OpenAITestServer
from tests.conftest import TEST_KEY
from tests.test_cli import run

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


def invert_args(server: OpenAITestServer, source: Path, output: Path, *more: str) -> list[str]:
    return [
        "invert", str(source), "-o", str(output), "--steps", "0", "--no-progress",
        "--evaluate", "--variants", "3", "--generator", "openai", "--base-url", server.url,
        *more,
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
    done = run(*invert_args(server, source, output, "--batch-api"), env=env)
    assert done.returncode == 0, done.stderr
    stats = batch_stats(server)
    assert "failed" not in stats["statuses"]  # never refused by the server
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
    done = run(*invert_args(server, source, tmp_path / "none.jsonl", "--status"))
    assert done.returncode == 2
    assert "no Batch API run here yet" in done.stderr


def test_a_job_in_batch_mode_survives_a_restart_and_stores_every_row(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    from fastapi.testclient import TestClient

    from embed2prompt.service.app import create_app

    server.configure(batch_delay_s=1.5)
    settings = Settings(
        openai_api_key=SecretStr(TEST_KEY),
        openai_base_url=server.url,
        generator="openai",
        refinement_steps=0,
        jobs_database=str(tmp_path / "jobs.sqlite3"),
        batch_poll_initial_s=0.05,
        batch_poll_max_s=0.2,
    )
    body = {
        "embeddings": np.load(source).tolist(),
        "mode": "batch",
        "generate_variants": True,
    }
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

"""Batch API input files cut at every cap (:class:`~embed2prompt.batch_api.files.FileWriter`):
requests a file, bytes a file, OpenAI's 50,000 embedding inputs a batch and the queue's
input tokens; a request that breaks a cap alone fails with the cap named. The files are
the real ones a run uploads, written from a real state file; nothing is sent. And the
pauses between polls of running batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from embed2prompt.batch_api.files import (
    MAX_EMBEDDING_INPUTS_PER_BATCH,
    FileSteps,
    poll_pauses,
    queue_tokens,
)
from embed2prompt.batch_api.stages import CHAT, EMBEDDINGS
from embed2prompt.batch_api.state import RunState
from embed2prompt.settings import Settings


@pytest.fixture
def state(tmp_path: Path) -> Iterator[RunState]:
    run_state = RunState(tmp_path / "state.sqlite3")
    run_state.put("run_id", "test")
    yield run_state
    run_state.close()


def plan(state: RunState, endpoint: str, bodies: list[dict[str, Any]], tokens: int) -> None:
    """Stage 1's pending requests, one a row, as :class:`BatchApiRun` plans them."""
    with state.transaction() as db:
        db.executemany(
            "INSERT INTO requests VALUES (?, 1, ?, ?, 'm', ?, ?, 0, NULL, 'pending', NULL, "
            "NULL, 0)",
            (
                (f"1/{row}/o", row, endpoint, json.dumps(body), tokens)
                for row, body in enumerate(bodies)
            ),
        )


def written(state: RunState, folder: Path) -> list[list[dict[str, Any]]]:
    """Each input file's lines, in file order."""
    return [
        [json.loads(line) for line in (folder / f"input-{f.number:05d}.jsonl").open()]
        for f in state.files()
    ]


def chat(row: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"prompt {row} " * 20}]}


def test_files_are_cut_at_the_requests_and_bytes_a_file_holds(
    tmp_path: Path, state: RunState
) -> None:
    plan(state, CHAT, [chat(row) for row in range(40)], tokens=50)
    settings = Settings(batch_max_requests_per_file=7, batch_max_file_bytes=2048)
    FileSteps(state, tmp_path, settings).write(1, [CHAT])
    files = state.files()
    lines = written(state, tmp_path)
    # Every request once, each file within both caps, and the state's record of each
    # file (its requests, bytes) is the file on disk.
    custom_ids = [line["custom_id"] for file in lines for line in file]
    assert sorted(custom_ids) == sorted(f"1/{row}/o#0" for row in range(40))
    assert all(len(file) <= 7 for file in lines)
    sizes = [(tmp_path / f"input-{f.number:05d}.jsonl").stat().st_size for f in files]
    assert all(size <= 2048 for size in sizes)
    assert [f.bytes for f in files] == sizes
    assert [f.requests for f in files] == [len(file) for file in lines]
    assert min(len(file) for file in lines[:-1]) < 7  # the bytes, not only the count, cut
    assert all(line["url"] == CHAT and line["method"] == "POST" for file in lines for line in file)
    assert state.request_counts(1) == {"filed": 40}


def test_embeddings_files_hold_at_most_50000_inputs(tmp_path: Path, state: RunState) -> None:
    inputs = 2_000
    requests = MAX_EMBEDDING_INPUTS_PER_BATCH // inputs + 5  # 30: 60,000 inputs
    bodies = [{"model": "m", "input": ["w"] * inputs} for _ in range(requests)]
    plan(state, EMBEDDINGS, bodies, tokens=inputs)
    FileSteps(state, tmp_path, Settings()).write(1, [EMBEDDINGS])
    counts = [sum(len(line["body"]["input"]) for line in file) for file in written(state, tmp_path)]
    assert counts == [MAX_EMBEDDING_INPUTS_PER_BATCH, 10_000]


def test_files_are_cut_at_the_queue_tokens_and_a_request_over_a_cap_fails_alone(
    tmp_path: Path, state: RunState
) -> None:
    plan(state, CHAT, [chat(row) for row in range(10)], tokens=40)
    with state.transaction() as db:  # one request larger than the whole queue
        db.execute("UPDATE requests SET tokens = 500 WHERE key = '1/4/o'")
    FileSteps(state, tmp_path, Settings(batch_queue_tokens=100)).write(1, [CHAT])
    assert [f.tokens for f in state.files()] == [80, 80, 80, 80, 40]
    assert state.request_counts(1) == {"filed": 9, "failed": 1}
    failed = state.request("1/4/o")
    assert failed is not None
    assert failed.error is not None
    assert "needs 500 input tokens" in failed.error
    assert "batch_queue_tokens" in failed.error


@pytest.mark.parametrize(
    ("initial", "most", "expected"),
    [
        (5.0, 300.0, [5, 10, 20, 40, 80, 160, 300, 300]),
        (0.05, 0.2, [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]),
        (10.0, 10.0, [10.0] * 8),
    ],
)
def test_polls_back_off_doubling_to_the_most(
    initial: float, most: float, expected: list[float]
) -> None:
    settings = Settings(batch_poll_initial_s=initial, batch_poll_max_s=most)
    assert list(islice(poll_pauses(settings), 8)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # OpenAI's batch-queue limits for gpt-4o-mini, by tier, unless set.
        ({"rate_limit_tier": "tier_1"}, 2_000_000),
        ({"rate_limit_tier": "tier_2"}, 20_000_000),
        ({"rate_limit_tier": "tier_5"}, 15_000_000_000),
        ({"rate_limit_tier": "tier_5", "batch_queue_tokens": 1_000}, 1_000),
    ],
)
def test_the_queue_holds_the_tiers_batch_limit_unless_set(
    settings: dict[str, Any], expected: int
) -> None:
    assert queue_tokens(Settings(**settings)) == expected

"""``kill -9`` during each step of a Batch API run (uploading, waiting, downloading,
joining), then the same command again: nothing uploaded or run twice (the server
counts), nothing lost (every row written once)."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.testing import OpenAITestServer
from tests.test_batch_api import (
    FAST_POLLS,
    TEXTS,
    assert_each_request_once,
    batch_stats,
    invert_args,
    records,
)
from tests.test_cli import run

pytestmark = pytest.mark.slow  # kills and reruns of Batch API runs

F_SETPIPE_SZ = 1031  # Linux: a pipe's capacity


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "vectors.npy"
    np.save(path, np.tile(LocalEmbedder().embed_sync(TEXTS), (8, 1)))  # 32 rows
    return path


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "embed2prompt", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the step"
        time.sleep(0.02)  # polling the server's counters, another process


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def finish_and_check(server: OpenAITestServer, source: Path, output: Path) -> None:
    server.configure(file_upload_delay_s=0.0, file_content_delay_s=0.0, batch_delay_s=0.0)
    done = run(*invert_args(server, source, output, "--batch-api"), env=FAST_POLLS)
    assert done.returncode == 0, done.stderr
    rows = records(output)
    assert sorted(rows) == list(range(32))
    assert output.read_text().count("\n") == 32  # each row once
    assert all(row["success"] for row in rows.values())
    assert_each_request_once(server, Path(f"{output}.batch-api") / "state.sqlite3")


@pytest.mark.parametrize(
    ("step", "server_delay", "reached"),
    [
        # the server has stored the file but not answered: the rerun must find it
        ("uploading", {"file_upload_delay_s": 30.0}, lambda s: s["files_uploaded"] >= 1),
        ("waiting", {"batch_delay_s": 30.0}, lambda s: s["batches_created"] >= 1),
        ("downloading", {"file_content_delay_s": 30.0}, lambda s: s["downloads_started"] >= 1),
    ],
)
def test_a_kill_during_a_step_then_a_rerun_repeats_nothing_and_loses_nothing(
    tmp_path: Path,
    source: Path,
    server: OpenAITestServer,
    step: str,
    server_delay: dict[str, float],
    reached: Callable[[dict[str, int]], bool],
) -> None:
    server.configure(**server_delay)
    output = tmp_path / "prompts.jsonl"
    process = start(invert_args(server, source, output, "--batch-api"), FAST_POLLS)
    wait_until(lambda: reached(batch_stats(server)), process)
    if step == "waiting":  # the batch's id recorded too (the other case: as uploading)
        state = Path(f"{output}.batch-api") / "state.sqlite3"
        wait_until(lambda: _steps(state) == {"submitted"}, process)
    kill(process)
    finish_and_check(server, source, output)


def test_a_kill_while_joining_results_then_a_rerun_joins_the_rest_once(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    output = tmp_path / "prompts.jsonl"
    state = Path(f"{output}.batch-api") / "state.sqlite3"
    # One result line per transaction, each logged: once the test stops reading the
    # log, the run blocks on a full pipe in the middle of the join, and is killed there.
    env = {**FAST_POLLS, "EMBED2PROMPT_BATCH_JOIN_CHUNK": "1"}
    process = start(["--debug", *invert_args(server, source, output, "--batch-api")], env)
    assert process.stderr is not None
    fcntl.fcntl(process.stderr.fileno(), F_SETPIPE_SZ, 4096)
    for line in process.stderr:
        if "joined 1 of" in line:
            break
    else:
        pytest.fail("the run never joined a result")
    previous = -1
    while (done := _done_requests(state)) != previous:  # until the blocked run stops moving
        previous = done
        time.sleep(0.5)  # watching another process come to rest
    kill(process)
    assert 0 < _done_requests(state) < 96  # killed mid-join: some results in, not all
    assert "downloaded" in _steps(state)
    finish_and_check(server, source, output)


def _steps(state: Path) -> set[str]:
    with sqlite3.connect(state) as db:
        return {step for (step,) in db.execute("SELECT step FROM files")}


def _done_requests(state: Path) -> int:
    with sqlite3.connect(state) as db:
        return int(db.execute("SELECT COUNT(*) FROM requests WHERE status = 'done'").fetchone()[0])


def test_a_cancel_stops_the_batch_keeps_what_it_ran_and_the_rerun_sends_the_rest(
    tmp_path: Path, source: Path, server: OpenAITestServer
) -> None:
    server.configure(batch_delay_s=40.0)  # in progress until cancelled
    output = tmp_path / "prompts.jsonl"
    process = start(invert_args(server, source, output, "--batch-api"), FAST_POLLS)
    wait_until(lambda: batch_stats(server)["statuses"].get("in_progress") == 1, process)
    process.send_signal(signal.SIGINT)  # Ctrl-C: the run stops, its batch goes on
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--cancel" in stderr
    done = run(*invert_args(server, source, output, "--batch-api", "--cancel"), env=FAST_POLLS)
    assert done.returncode == 0, done.stderr
    assert "cancelled 1 batch;" in done.stdout
    stats = batch_stats(server)
    assert (stats["batches_cancelled"], stats["statuses"]) == (1, {"cancelled": 1})
    assert stats["files_held"] == {}  # its upload and its output: deleted
    # It ran the first half of the 96 generations before it stopped; those are kept.
    assert stats["requests_submitted"] == 48
    state = Path(f"{output}.batch-api") / "state.sqlite3"
    assert _done_requests(state) == 48
    status = run(*invert_args(server, source, output, "--batch-api", "--status"))
    assert "cancelled at" in status.stdout
    finish_and_check(server, source, output)  # the other 48 sent, none twice
    assert batch_stats(server)["files_held"] == {}

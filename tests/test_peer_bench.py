"""The measurements of ``python -m bench peer`` and ``invert-limit`` (issue 18).

Every figure of those tables comes from the local server's own records through
``bench.engine.limit_run``; these check that it reads them right, and that a short
comparison runs end to end against the real server process.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bench.engine import limit_run
from bench.peer import (
    COOKBOOK_COMMIT,
    LIMIT,
    Setup,
    compare,
    cookbook_revision,
    git_blob_id,
    server_config,
)


def _arrival(t: float, label: str, outcome: str = "ok") -> dict[str, Any]:
    return {"t": t, "label": label, "outcome": outcome, "path": "/v1/embeddings", "tokens": 3}


def test_limit_run_reads_the_servers_records() -> None:
    texts = ["a", "b", "c"]
    arrivals = [
        _arrival(0.0, "a"),
        _arrival(1.0, "b", "429_limit"),
        _arrival(61.0, "b", "429_limit"),  # after the first minute
        _arrival(62.0, "b"),
        _arrival(120.0, "c"),
    ]
    stats = {"arrivals": arrivals, "succeeded_inputs": {"a": 1, "b": 1, "c": 1}}
    run = limit_run(stats, texts, limit_per_minute=3.0)
    assert run.seconds == 120.0
    assert run.share == pytest.approx(3 / (3.0 / 60 * 120))  # 3 done where 6 were allowed
    assert (run.rate_limited, run.later_429s, run.later_requests) == (2, 1, 3)
    assert run.later_share == pytest.approx(1 / 3)
    assert run.worst_attempts == 3  # "b"
    assert (run.failed, run.once) == (0, True)


def test_limit_run_counts_items_lost_and_done_twice() -> None:
    arrivals = [_arrival(0.0, "a"), _arrival(0.5, "a"), _arrival(1.0, "b", "429_limit")]
    stats = {"arrivals": arrivals, "succeeded_inputs": {"a": 2}}
    run = limit_run(stats, ["a", "b"], limit_per_minute=60.0)
    assert (run.failed, run.once, run.worst_attempts) == (1, False, 2)


def test_the_two_server_behaviours_are_the_issues() -> None:
    sliding = server_config("sliding", LIMIT)
    assert sliding.sliding_window
    assert not sliding.send_rate_limit_headers
    assert (sliding.limit_window_s, sliding.limit_retry_after_s) == (60.0, 1)
    per_second = server_config("per-second", LIMIT)
    assert not per_second.sliding_window
    assert per_second.send_rate_limit_headers
    assert per_second.limit_window_s == 1.0
    assert sliding.rpm == per_second.rpm == LIMIT


def test_the_cookbook_script_is_pinned_by_gits_own_blob_id(tmp_path: Path) -> None:
    script = tmp_path / "api_request_parallel_processor.py"
    script.write_bytes(b"print('another revision')\n")
    hashed = subprocess.run(
        ["git", "hash-object", str(script)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_blob_id(script.read_bytes()) == hashed
    assert cookbook_revision(script) == f"blob {hashed[:7]}, not commit {COOKBOOK_COMMIT[:7]}'s"


def test_a_missing_cookbook_script_stops_the_comparison_before_it_measures(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere.py"
    setup = Setup(items=30, runs=1, told=(900,), behaviours=("per-second",), cookbook=missing)
    with pytest.raises(SystemExit, match=r"cannot read the Cookbook script at .*nowhere\.py"):
        asyncio.run(compare(setup))


@pytest.mark.slow
def test_a_short_comparison_runs_end_to_end_and_says_when_the_peer_is_missing() -> None:
    setup = Setup(items=30, runs=1, told=(900,), behaviours=("per-second",), cookbook=None)
    (row,) = asyncio.run(compare(setup))
    assert "Cookbook: not run: give --cookbook PATH" in row.measured
    assert "embed2prompt:" in row.measured
    assert "0 failed" in row.measured.split("embed2prompt:")[1]
    assert row.passed is None  # per-second windows are shown side by side, not judged

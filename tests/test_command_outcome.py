"""How ``invert`` and ``invert --batch-api`` end: the summary printed and the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embed2prompt.batch.run import BatchOutcome
from embed2prompt.batch.summary import RunningSummary
from embed2prompt.cli import INTERRUPTED
from embed2prompt.commands.outcome import report_outcome

COMMAND = "embed2prompt invert in.npy -o out.jsonl"


def _outcome(records: list[dict[str, object]], *, total: int, resumed: int = 0) -> BatchOutcome:
    summary = RunningSummary()
    for record in records:
        summary.add(record)
    return BatchOutcome(
        summary=summary.summary(2.0),
        rows_total=total,
        resumed=resumed,
        written=len(records) - resumed,
        complete=len(records) == total,
    )


GOOD = {"success": True, "prompt_similarity": 0.8, "processing_time": 0.1}
BAD = {"success": False, "error": "InputError: all zeros"}


def test_a_complete_run_prints_its_table_and_exits_by_its_failures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = Path("out.jsonl")
    assert report_outcome(out, _outcome([GOOD, GOOD], total=2), as_json=False, command=COMMAND) == 0
    table = capsys.readouterr().out
    assert "rows processed" in table
    assert "average prompt similarity" in table
    assert "0.8000" in table
    assert report_outcome(out, _outcome([GOOD, BAD], total=2), as_json=False, command=COMMAND) == 1


def test_json_carries_the_summary_rows_and_output(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = _outcome([GOOD, BAD, GOOD], total=3, resumed=1)
    code = report_outcome(Path("out.jsonl"), outcome, as_json=True, command=COMMAND)
    printed = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (printed["rows"], printed["output"]) == (3, "out.jsonl")
    assert (printed["total_processed"], printed["failed"]) == (3, 1)


def test_a_stopped_run_says_how_to_finish_it(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = _outcome([GOOD], total=4)
    code = report_outcome(Path("out.jsonl"), outcome, as_json=False, command=COMMAND)
    stderr = capsys.readouterr().err
    assert code == INTERRUPTED
    assert "1 of 4 rows are in out.jsonl" in stderr
    assert COMMAND in stderr
    assert report_outcome(Path("out.jsonl"), None, as_json=True, command=COMMAND) == INTERRUPTED
    assert "the rows finished so far are in out.jsonl" in capsys.readouterr().err

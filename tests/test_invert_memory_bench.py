"""The measurements of ``python -m bench invert-memory`` (issue 17).

The bench reads a running process's peak memory each time its output passes a number of
rows; these run a real child process that grows its memory between two sizes and check
that each reading is the peak by that size, and that a failed run says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bench.invert_memory import Milestone, rows, sizes, watch

_GROWTH_MIB = 200
# Writes two rows, waits for the bench to read them, takes _GROWTH_MIB more, writes two
# more rows and exits at once (its last peak is read from the exited process).
_CHILD = f"""
import os, sys, time
output, go = sys.argv[1], sys.argv[2]
with open(output, "ab", buffering=0) as rows:
    rows.write(b"a\\nb\\n")
    while not os.path.exists(go):
        time.sleep(0.01)
    held = bytearray({_GROWTH_MIB} * 1024 * 1024)
    for page in range(0, len(held), 4096):
        held[page] = 1
    rows.write(b"c\\nd\\n")
"""


def test_each_size_reads_the_peak_the_run_had_reached_by_then(tmp_path: Path) -> None:
    output, go = tmp_path / "rows.jsonl", tmp_path / "go"
    passed: list[Milestone] = []

    def on_pass(milestone: Milestone) -> None:
        passed.append(milestone)
        go.touch()

    reached, _ = watch(
        [sys.executable, "-c", _CHILD, str(output), str(go)], output, [2, 4], on_pass
    )

    assert passed == reached
    assert [milestone.rows for milestone in reached] == [2, 4]
    assert 0 < reached[0].peak_mib < _GROWTH_MIB
    assert reached[1].peak_mib - reached[0].peak_mib >= 0.95 * _GROWTH_MIB
    assert reached[0].elapsed_s <= reached[1].elapsed_s


def test_a_run_that_stops_short_says_how_far_it_got(tmp_path: Path) -> None:
    output = tmp_path / "rows.jsonl"
    child = f"open({str(output)!r}, 'w').write('a\\n'); raise SystemExit('disk full')"

    with pytest.raises(RuntimeError, match=r"exit 1, 1 of 3 rows\n.*disk full"):
        watch([sys.executable, "-c", child], output, [1, 3], lambda milestone: None)


def test_the_table_compares_each_size_with_the_smallest() -> None:
    table = rows(
        "default refinement",
        [
            Milestone(16, 800.0, 20.0),
            Milestone(1000, 900.0, 720.0),
            Milestone(10000, 1000.0, 7220.0),
        ],
        1.4,
    )

    assert "peak 900 MiB (1.12x 16 rows'); 1.4 rows/s since 16" in table[1].measured
    assert "1.4 rows/s since 1,000" in table[2].measured
    assert table[-1].measured == "800 MiB vs 1000 MiB (1.25x)"
    assert table[-1].passed is False


def test_unusable_sizes_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIZES", "16,many")
    with pytest.raises(SystemExit, match="SIZES='16,many': expected row counts"):
        sizes("SIZES", "16")
    monkeypatch.setenv("SIZES", "")
    assert sizes("SIZES", "16") == []

"""``python -m bench``'s own command line: the list of benchmarks and its refusals."""

from __future__ import annotations

import re

import pytest
from bench.__main__ import BENCHMARKS, main


def test_help_names_every_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = set(re.findall(r"[a-z][a-z-]+[a-z]", capsys.readouterr().out))
    assert set(BENCHMARKS) <= listed, set(BENCHMARKS) - listed


def test_an_unknown_name_is_refused_with_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["invert-memroy"]) == 2
    refusal = capsys.readouterr().err
    assert "unknown benchmark(s) ['invert-memroy']" in refusal
    assert "'invert-memory'" in refusal

"""The command line, run as a user runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def as_a_user() -> list[str]:
    """A command prefix under which the permission bits hold: none for a user; for root,
    ``setpriv`` without the capabilities that let root write in a read-only folder (CI
    and this project's machines run the tests as root). Skips the test without it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")  # util-linux
    if setpriv is None:
        pytest.skip("root may write in a read-only folder, and setpriv is not installed")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def run(
    *args: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``embed2prompt ARGS`` as a process, with these environment variables added, after
    ``prefix`` (:func:`as_a_user`) when given."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "embed2prompt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_help_has_an_example() -> None:
    result = run("demo", "--help")
    assert result.returncode == 0
    assert "example:" in result.stdout


def test_help_and_a_refused_output_load_neither_pytorch_nor_the_openai_sdk(
    tmp_path: Path,
) -> None:
    """Seconds to import each: the command line's help and its checks of paths and
    options answer without them (a wrong output type is known before any model loads)."""
    vectors = tmp_path / "v.npy"
    vectors.write_bytes(b"")  # never read: the output is refused first
    program = f"""
import contextlib, io, sys
from embed2prompt.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["invert", "--help"])
code = main(["invert", {str(vectors)!r}, "-o", "out.csv"])
print(code, "torch" in sys.modules, "openai" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split() == ["2", "False", "False"], result.stdout + result.stderr
    assert "unsupported output type '.csv'" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # a whole demo
def test_demo_runs_the_pipeline_offline_with_the_fluent_inverter() -> None:
    result = run("demo", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "10 (10 ok, 0 failed)" in result.stdout
    assert result.stdout.count("target text:") == 10
    assert result.stdout.count("best variant") == 10
    assert "turned back into prompts by the fluent inverter" in result.stdout
    # The LM writes sentences, where the small decoder strings words together: most
    # prompts end as a question or a sentence does.
    prompts = re.findall(r"^    prompt: ['\"](.*)['\"]$", result.stdout, flags=re.MULTILINE)
    assert len(prompts) == 10
    assert sum(prompt.endswith(("?", ".")) for prompt in prompts) >= 5, prompts
    # The executable freezes what the models left alive before exiting: nothing left
    # behind prints an error at exit.
    assert "Exception ignored" not in result.stderr, result.stderr


def test_the_old_name_of_the_fluent_inverter_names_the_new_one(tmp_path: Path) -> None:
    result = run("demo", "--inverter", "models/fluent_model.pt")
    assert result.returncode != 0
    assert "models/fluent_model.pt was renamed models/best_model.pt" in result.stderr
    assert "Traceback" not in result.stderr
    # A missing checkpoint of that name elsewhere is only missing.
    elsewhere = run("demo", "--inverter", str(tmp_path / "fluent_model.pt"))
    assert elsewhere.returncode != 0
    assert "renamed" not in elsewhere.stderr
    assert "Traceback" not in elsewhere.stderr


def test_the_engine_demo_refuses_an_inverter() -> None:
    result = run("demo", "--engine", "--inverter", "models/small_model.pt")
    assert result.returncode == 2
    assert "--inverter is for the main job" in result.stderr


@pytest.mark.slow  # a whole demo
def test_engine_demo_runs_offline_and_keeps_the_servers_limit() -> None:
    result = run("demo", "--engine")
    assert result.returncode == 0, result.stderr
    assert "200 (200 ok, 0 failed)" in result.stdout
    assert "429_limit" not in result.stdout.split("server saw:")[1].split("(")[0]


@pytest.mark.slow
def test_eval_refuses_bad_numbers_with_a_usage_error() -> None:
    for option, value, expected in (
        ("--steps", "0,x", "comma-separated whole numbers >= 0"),
        ("--batch", "0", "whole number >= 1"),
        ("--samples", "-3", "whole number >= 0"),
        ("--neighbours", "-1", "whole number >= 0"),
        ("--token-edits", "-1", "whole number >= 0"),
        ("--fluency-shortlist", "0", "whole number >= 1"),
    ):
        result = run("eval", option, value, timeout=60)
        assert result.returncode == 2, (option, result.stderr)
        assert f"argument {option}: expected" in result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr

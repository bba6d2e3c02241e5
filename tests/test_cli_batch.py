"""Batch runs from the command line, run as a user runs them: big files, resume, reports."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.testing import OpenAITestServer
from tests.conftest import TEST_KEY
from tests.test_cli import as_a_user, run

pytestmark = pytest.mark.slow  # each test runs the command line in a new process (seconds each)

TEXTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "Explain how a hash table works.",
    "What is the capital of France?",
]
FAST = ("--steps", "0", "--no-progress")  # one-pass inversion: seconds, not minutes
# The tests of reading, writing and resuming files run the small decoder: what they test
# does not depend on the inverter, and each of its processes starts seconds sooner than
# one that loads the default's language model. The fields and the bank's neighbours are
# tested with the default.
FILES = (*FAST, "--inverter", str(SMALL_MODEL))


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "embed2prompt", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return LocalEmbedder().embed_sync(TEXTS)


def records(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the output ends with a cut line"
    return [json.loads(line) for line in raw.splitlines()]


def indices(path: Path) -> list[int]:
    return sorted(record["index"] for record in records(path))


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while not (path.is_file() and path.read_bytes().count(b"\n") >= count):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)  # polling another process's output file, not waiting on a clock


def test_npy_to_jsonl_writes_every_row_once_with_the_documented_fields(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    output = tmp_path / "prompts.jsonl"
    result = run("invert", str(source), "-o", str(output), *FAST, "--json")
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr  # nothing frozen at exit complains
    rows = records(output)
    assert sorted(row["index"] for row in rows) == [0, 1, 2, 3]
    for row in rows:
        assert set(row) == {
            "index",
            "id",
            "prompt",
            "prompt_similarity",
            "similarity",
            "best_variant",
            "success",
            "error",
            "processing_time",
        }
        assert row["success"]
        assert row["prompt"]
        assert row["prompt_similarity"] > 0.2
        assert row["similarity"] is None  # not evaluated
        assert row["id"] == str(row["index"])
    summary = json.loads(result.stdout)
    assert (summary["total_processed"], summary["successful"], summary["failed"]) == (4, 4, 0)
    assert summary["average_prompt_similarity"] == pytest.approx(
        np.mean([row["prompt_similarity"] for row in rows]), abs=1e-6
    )


def test_parquet_in_and_out_keeps_ids(tmp_path: Path, vectors: np.ndarray) -> None:
    source = tmp_path / "vectors.parquet"
    table = pa.table(
        {"id": ["a", "b", "c", "d"], "embedding": [list(map(float, v)) for v in vectors]}
    )
    pq.write_table(table, source)
    output = tmp_path / "prompts.parquet"
    result = run("invert", str(source), "-o", str(output), *FILES)
    assert result.returncode == 0, result.stderr
    assert "rows processed" in result.stdout  # the summary table
    back = pq.read_table(output).to_pylist()
    assert sorted((row["index"], row["id"]) for row in back) == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
        (3, "d"),
    ]
    assert all(row["success"] and row["prompt"] for row in back)
    assert not (tmp_path / "prompts.parquet.partial.jsonl").exists()


def test_bad_rows_fail_alone_and_the_exit_code_says_so(tmp_path: Path, vectors: np.ndarray) -> None:
    source = tmp_path / "vectors.jsonl"
    lines = [
        json.dumps({"id": "good", "embedding": vectors[0].tolist()}),
        "{not json",
        json.dumps({"id": "nan", "embedding": [float("nan")] * 384}).replace("NaN", "NaN"),
        json.dumps({"id": "short", "embedding": [0.1, 0.2]}),
        json.dumps({"id": "nothing"}),
        json.dumps({"id": "good2", "embedding": vectors[1].tolist()}),
    ]
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "prompts.jsonl"
    result = run("invert", str(source), "-o", str(output), *FILES)
    assert result.returncode == 1, result.stderr
    by_index = {row["index"]: row for row in records(output)}
    assert sorted(by_index) == [0, 1, 2, 3, 4, 5]
    assert by_index[0]["success"]
    assert by_index[5]["success"]
    assert "line 2 is not valid JSON" in by_index[1]["error"]
    assert "NaN or infinite" in by_index[2]["error"]
    assert "dimension 2" in by_index[3]["error"]
    assert "'embedding' field" in by_index[4]["error"]
    assert "Traceback" not in result.stderr


def test_rows_that_are_not_json_numbers_fail_alone(tmp_path: Path, vectors: np.ndarray) -> None:
    """A 400-digit integer stopped the run with exit 3 (NumPy's OverflowError), one of
    5,000 digits too (int()'s limit), and "0.1" or true were read as numbers."""
    good = vectors[0].tolist()
    lines = [
        json.dumps({"id": "good", "embedding": good}),
        '{"id": "long", "embedding": [' + "1" * 400 + ", " + json.dumps(good[1:])[1:] + "}",
        '{"id": "longer", "embedding": [' + "9" * 5000 + ", " + json.dumps(good[1:])[1:] + "}",
        json.dumps({"id": "text", "embedding": [str(value) for value in good]}),
        json.dumps({"id": "flags", "embedding": [True] * 384}),
        json.dumps({"id": "good2", "embedding": vectors[1].tolist()}),
    ]
    source = tmp_path / "vectors.jsonl"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "prompts.jsonl"
    result = run("invert", str(source), "-o", str(output), *FILES)
    assert result.returncode == 1, result.stderr  # rows failed; the run did not
    by_id = {row["id"]: row for row in records(output)}
    assert sorted(by_id) == ["flags", "good", "good2", "long", "longer", "text"]
    assert by_id["good"]["success"]
    assert by_id["good2"]["success"]
    for name in ("long", "longer"):  # as 1e400 is: infinite
        assert "contains NaN or infinite values" in by_id[name]["error"]
    assert by_id["text"]["error"].startswith(
        "line 4: the embedding is not a list of numbers: item 0 is a string; expected JSON numbers"
    )
    assert by_id["flags"]["error"].startswith(
        "line 5: the embedding is not a list of numbers: item 0 is a boolean"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.npy", None, "no such file"),
        ("vectors.csv", b"1,2,3", "unsupported input type '.csv'"),
        ("cube.npy", "cube", "expected a 2-D array"),
        ("columns.parquet", "parquet", "no 'embedding' column"),
        ("broken.parquet", b"not parquet", "not a readable Parquet file"),
        # Not real numbers: NumPy would drop the imaginary part, or read "0.1" as 0.1.
        ("complex.npy", "complex", "expected real numbers (a float or integer dtype), got dtype"),
        ("text.parquet", "text", "the 'embedding' column holds list<element: string>; expected"),
        ("flags.parquet", "flags", "the 'embedding' column holds list<element: bool>; expected"),
    ],
)
def test_unreadable_input_is_exit_2_naming_the_file(
    tmp_path: Path, name: str, content: object, message: str
) -> None:
    path = tmp_path / name
    if content == "cube":
        np.save(path, np.ones((2, 2, 2)))
    elif content == "parquet":
        pq.write_table(pa.table({"vector": [[0.1]]}), path)
    elif content == "complex":
        np.save(path, np.ones((2, 384), dtype=np.complex64))
    elif content == "text":
        pq.write_table(pa.table({"embedding": [["0.1"] * 384]}), path)
    elif content == "flags":
        pq.write_table(pa.table({"embedding": [[True] * 384]}), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = run("invert", str(path), "-o", str(tmp_path / "out.jsonl"), *FAST)
    assert result.returncode == 2
    assert message in result.stderr
    assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_output_type_is_exit_2(tmp_path: Path, vectors: np.ndarray) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    result = run("invert", str(source), "-o", str(tmp_path / "out.csv"), *FAST)
    assert result.returncode == 2
    assert "unsupported output type '.csv'" in result.stderr


def _slow_run_args(server: OpenAITestServer, source: Path, output: Path) -> list[str]:
    """A run that takes a while: each row waits on the test server's generator."""
    return [
        "invert", str(source), "-o", str(output), *FILES,
        "--evaluate", "--generator", "openai", "--base-url", server.url,
        "--model", "gpt-4o-mini", "--concurrency", "2",
    ]  # fmt: skip


def test_a_killed_run_resumes_and_writes_each_row_exactly_once(
    tmp_path: Path, vectors: np.ndarray, server: OpenAITestServer
) -> None:
    server.configure(latency_ms=300)
    source = tmp_path / "vectors.npy"
    np.save(source, np.tile(vectors, (10, 1)))  # 40 rows
    output = tmp_path / "prompts.jsonl"
    env = {"OPENAI_API_KEY": TEST_KEY}
    process = start(*_slow_run_args(server, source, output), env=env)
    wait_for_lines(output, 5, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done = indices(output)
    assert 5 <= len(done) < 40
    assert len(done) == len(set(done))
    server.configure(latency_ms=0)
    result = run(*_slow_run_args(server, source, output), env=env)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {len(done)} of 40 rows" in result.stderr
    assert indices(output) == list(range(40))
    rows = records(output)
    assert all(row["similarity"] is not None for row in rows)  # evaluated


def test_ctrl_c_finishes_the_rows_in_progress_and_says_how_to_resume(
    tmp_path: Path, vectors: np.ndarray, server: OpenAITestServer
) -> None:
    server.configure(latency_ms=300)
    source = tmp_path / "vectors.npy"
    np.save(source, np.tile(vectors, (10, 1)))
    output = tmp_path / "prompts.jsonl"
    env = {"OPENAI_API_KEY": TEST_KEY}
    process = start(*_slow_run_args(server, source, output), env=env)
    wait_for_lines(output, 3, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "finishing the rows in progress" in stderr
    assert "run the same command again" in stderr
    command = shlex.join(["embed2prompt", *_slow_run_args(server, source, output)])
    assert stderr.rstrip().endswith(f"\n  {command}")  # every option kept (--steps 0)
    assert "Traceback" not in stderr
    rows = records(output)
    assert all(row["success"] for row in rows)  # the rows in progress finished, not cut
    assert len(rows) < 40
    server.configure(latency_ms=0)
    result = run(*_slow_run_args(server, source, output), env=env)
    assert result.returncode == 0, result.stderr
    assert indices(output) == list(range(40))


def test_resume_cuts_a_half_written_line_and_can_retry_failed_rows(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    output = tmp_path / "prompts.jsonl"
    failed = {"index": 1, "id": "1", "prompt": None, "success": False, "error": "boom"}
    output.write_text(json.dumps(failed) + "\n" + '{"index": 2, "id": "2", "pro')
    result = run("invert", str(source), "-o", str(output), *FILES)
    assert result.returncode == 1  # row 1's earlier failure is still in the output
    assert indices(output) == [0, 1, 2, 3]
    result = run("invert", str(source), "-o", str(output), *FILES, "--retry-failed")
    assert result.returncode == 0, result.stderr
    rows = {row["index"]: row for row in records(output)}
    assert sorted(rows) == [0, 1, 2, 3]
    assert rows[1]["success"]
    assert rows[1]["prompt"]


def test_the_output_of_another_input_is_refused(tmp_path: Path, vectors: np.ndarray) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    output = tmp_path / "prompts.jsonl"
    output.write_text(json.dumps({"index": 99, "success": True}) + "\n")
    # Refused before any model loads: a missing inverter is not what it reports.
    missing = tmp_path / "no_such_model.pt"
    result = run("invert", str(source), "-o", str(output), *FAST, "--inverter", str(missing))
    assert result.returncode == 2
    assert "row index 99 is not in the input" in result.stderr


def test_report_draws_a_self_contained_page(tmp_path: Path) -> None:
    results = tmp_path / "prompts.jsonl"
    rows = [
        {
            "index": i, "id": f"r{i}", "prompt": f"prompt {i} <script>alert(1)</script>",
            "prompt_similarity": 0.5 + i / 100, "similarity": 0.4 + i / 100,
            "best_variant": {"prompt": f"variant {i}", "similarity": 0.45 + i / 100},
            "success": True, "error": None, "processing_time": 0.1 * (i + 1),
        }
        for i in range(30)
    ]  # fmt: skip
    rows.append({"index": 30, "id": "bad", "success": False, "error": "ApiError: quota"})
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page_path = tmp_path / "report.html"
    result = run("report", str(results), "-o", str(page_path))
    assert result.returncode == 0, result.stderr
    page = page_path.read_text()
    assert page.count("data:image/png;base64,") == 4  # similarity, scatter, gains, latency
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "Best prompts" in page
    assert "Worst prompts" in page
    best_table = page.split("Best prompts")[1].split("Worst prompts")[0]
    assert best_table.index("prompt 29 ") < best_table.index("prompt 28 ")
    assert "1 of 31 rows failed" in page
    assert "ApiError" in page
    assert "http://" not in page
    assert "https://" not in page


def test_report_of_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = run("report", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert "no such file" in result.stderr


@pytest.mark.parametrize(
    "command", ["demo", "serve", "embed", "corpus", "train", "bank", "invert", "eval", "report"]
)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help", timeout=60)
    assert result.returncode == 0
    assert "example" in result.stdout


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_run_that_fails_to_start_leaves_no_output_and_an_empty_input_writes_one(
    tmp_path: Path, suffix: str
) -> None:
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 384), dtype=np.float32))
    output = tmp_path / f"prompts{suffix}"
    missing = tmp_path / "no_such_model.pt"
    result = run("invert", str(empty), "-o", str(output), *FAST, "--inverter", str(missing))
    assert result.returncode == 2
    assert "no inverter checkpoint" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("prompts")) == [
        f"prompts{suffix}.lock"  # the lock only: no empty output, no journal
    ]
    assert run("invert", str(empty), "-o", str(output), *FILES).returncode == 0
    assert output.is_file()  # a finished run has its output, with no rows
    assert not (tmp_path / f"prompts{suffix}.partial.jsonl").exists()


def test_a_folder_runs_as_one_input_numbered_across_files(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "a.npy", vectors[:2])
    pq.write_table(
        pa.table({"id": ["x", "y"], "embedding": [v.tolist() for v in vectors[2:]]}),
        folder / "b.parquet",
    )
    output = tmp_path / "prompts.jsonl"
    result = run("invert", str(folder), "-o", str(output), *FILES)
    assert result.returncode == 0, result.stderr
    rows = {row["index"]: row["id"] for row in records(output)}
    assert rows == {0: "0", 1: "1", 2: "x", 3: "y"}


def test_an_unreachable_shared_limiter_stops_the_run_and_records_no_failure(
    tmp_path: Path, vectors: np.ndarray, server: OpenAITestServer
) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    output = tmp_path / "prompts.jsonl"
    env = {"OPENAI_API_KEY": TEST_KEY, "EMBED2PROMPT_REDIS_URL": "redis://:pw@127.0.0.1:1/0"}
    result = run(*_slow_run_args(server, source, output), env=env)
    assert result.returncode == 2
    assert "LimiterUnavailableError" in result.stderr
    assert "left for the next run" in result.stderr
    assert "pw" not in result.stderr
    assert not output.exists()  # no row written: the rows stay to do, not failed


def test_two_runs_on_one_output_cannot_overlap(tmp_path: Path) -> None:
    from embed2prompt.batch.output import ResultLog
    from embed2prompt.errors import InputError

    first = ResultLog(tmp_path / "out.jsonl", 3)
    first.resume()
    first.write({"index": 1, "success": True})
    first.write({"index": 1, "success": True})  # the same row again: not written twice
    second = ResultLog(tmp_path / "out.jsonl", 3)
    with pytest.raises(InputError, match="another run is writing"):
        second.resume()
    first.close()
    assert indices(tmp_path / "out.jsonl") == [1]
    with (tmp_path / "out.jsonl").open("a") as handle:  # as an older version could have
        handle.write(json.dumps({"index": 1, "success": False}) + "\n")
    third = ResultLog(tmp_path / "out.jsonl", 3)
    seen: list[dict] = []
    third.resume(seen.append)
    third.close()
    assert [record["success"] for record in seen] == [True]  # the first one is kept
    assert indices(tmp_path / "out.jsonl") == [1]


def test_report_counts_variant_gains_without_evaluation(tmp_path: Path) -> None:
    results = tmp_path / "prompts.jsonl"
    row = {
        "index": 0, "id": "0", "prompt": "p", "prompt_similarity": 0.5, "similarity": None,
        "best_variant": {"prompt": "v", "similarity": None, "prompt_similarity": 0.7},
        "success": True, "error": None, "processing_time": 0.1,
    }  # fmt: skip
    results.write_text(json.dumps(row) + "\n")
    page = tmp_path / "r.html"
    assert run("report", str(results), "-o", str(page)).returncode == 0
    assert "What variants gained" in page.read_text()


def test_neighbours_set_how_many_bank_texts_join_the_first_guesses(tmp_path: Path) -> None:
    """A training text's embedding comes back as that text from the default model's
    prompt bank; with ``--neighbours 0`` only the inverter's own guesses compete."""
    from embed2prompt.inversion.inference import DEFAULT_MODEL, locate_model
    from embed2prompt.inversion.retrieval import PromptBank, bank_path

    bank = PromptBank.load(bank_path(locate_model(DEFAULT_MODEL)))
    text = max(bank.texts[:200], key=len)  # long: the inverter alone will not write it
    source = tmp_path / "vectors.npy"
    np.save(source, LocalEmbedder().embed_sync([text]))
    found, alone = tmp_path / "found.jsonl", tmp_path / "alone.jsonl"
    assert run("invert", str(source), "-o", str(found), *FAST).returncode == 0
    assert run("invert", str(source), "-o", str(alone), *FAST, "--neighbours", "0").returncode == 0
    (with_bank,) = records(found)
    (without,) = records(alone)
    assert with_bank["prompt"] == text
    assert with_bank["prompt_similarity"] == pytest.approx(1.0, abs=1e-3)
    assert without["prompt"] != text
    refused = run("invert", str(source), "-o", str(tmp_path / "x.jsonl"), "--neighbours", "-1")
    assert refused.returncode == 2
    assert "retrieval_neighbours" in refused.stderr


def test_a_bad_fluency_weight_is_refused_before_any_work(tmp_path: Path) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, np.ones((1, 384), dtype=np.float32))
    output = tmp_path / "prompts.jsonl"
    for weight in ("-1", "nan", "2"):
        refused = run("invert", str(source), "-o", str(output), "--fluency", weight)
        assert refused.returncode == 2, refused.stderr
        assert "refinement_fluency" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not output.exists()


def _output_mistakes(tmp_path: Path, source: Path) -> dict[str, tuple[list[str], str]]:
    """Every kind of output path that cannot be written: (invert's arguments after the
    input, what the one line says)."""
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "named.jsonl").mkdir()
    (tmp_path / "locked.jsonl.lock").mkdir()
    (tmp_path / "journal.parquet.partial.jsonl").mkdir()
    return {
        "a file as its folder": ([str(tmp_path / "a_file" / "o.jsonl")], "a_file is a file"),
        "a file further up": (
            [str(tmp_path / "a_file" / "deeper" / "o.jsonl")],
            "a_file is a file",
        ),
        "a folder named like the output": ([str(tmp_path / "named.jsonl")], "is a folder"),
        "its lock a folder": ([str(tmp_path / "locked.jsonl")], "locked.jsonl.lock: Is a dir"),
        "its journal a folder": (
            [str(tmp_path / "journal.parquet")],
            "journal.parquet.partial.jsonl: Is a directory",
        ),
        "a place no one may write": (["/sys/embed2prompt-test.jsonl"], "Permission denied"),
        "the input itself": ([str(source)], "is the input"),
        "an unsupported type": ([str(tmp_path / "o.csv")], "unsupported output type '.csv'"),
    }


@pytest.mark.parametrize(
    "mistake",
    [
        "a file as its folder",
        "a file further up",
        "a folder named like the output",
        "its lock a folder",
        "its journal a folder",
        "a place no one may write",
        "the input itself",
        "an unsupported type",
    ],
)
def test_an_output_path_that_cannot_be_written_is_exit_2_in_one_line(
    tmp_path: Path, vectors: np.ndarray, mistake: str
) -> None:
    source = tmp_path / "vectors.jsonl"
    source.write_text("".join(json.dumps({"embedding": v.tolist()}) + "\n" for v in vectors))
    before = source.read_bytes()
    (output,), message = _output_mistakes(tmp_path, source)[mistake]
    result = run("invert", str(source), "-o", output, *FAST)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"embed2prompt: error: {output}: ")
    assert message in line
    assert source.read_bytes() == before


@pytest.mark.parametrize("mistake", ["a file as its folder", "a place no one may write"])
def test_on_ray_too_an_unwritable_output_is_exit_2_before_ray_starts(
    tmp_path: Path, vectors: np.ndarray, mistake: str
) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    (output,), message = _output_mistakes(tmp_path, source)[mistake]
    result = run("invert", str(source), "-o", output, *FAST, "--engine", "ray")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert message in line


def test_an_output_among_the_input_folders_files_is_refused(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    """The next run would read it, and its journal, as input."""
    folder = tmp_path / "shards"
    folder.mkdir()
    np.save(folder / "a.npy", vectors)
    result = run("invert", str(folder), "-o", str(folder / "prompts.jsonl"), *FILES)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "is in the input folder" in line
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy"]
    nested = folder / "out" / "prompts.jsonl"  # a folder of its own inside is fine
    assert run("invert", str(folder), "-o", str(nested), *FILES).returncode == 0


def test_a_read_only_folder_is_exit_2(tmp_path: Path, vectors: np.ndarray) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, vectors)
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    output = folder / "o.jsonl"
    result = run("invert", str(source), "-o", str(output), *FAST, prefix=as_a_user())
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"embed2prompt: error: {output}: cannot write the output here")
    assert "Permission denied" in line
    assert list(folder.iterdir()) == []


def test_help_states_the_defaults_the_run_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each default named by `invert --help` is the one a run without the option gets."""
    import argparse

    from embed2prompt.cli import _build_parser, _settings

    for name in ("RATE_LIMIT_TIER", "REFINEMENT_STEPS", "EMBEDDER", "MODEL_PATH"):
        monkeypatch.delenv(f"EMBED2PROMPT_{name}", raising=False)
    used = _settings()  # what a run given none of the options uses
    (commands,) = (a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {
        option: action.help
        for action in commands.choices["invert"]._actions
        for option in action.option_strings
    }
    for option, setting in (
        ("--tier", "rate_limit_tier"),
        ("--steps", "refinement_steps"),
        ("--beam", "refinement_beam"),
        ("--edits", "refinement_edits"),
        ("--fluency", "refinement_fluency"),
        ("--neighbours", "retrieval_neighbours"),
        ("--embedder", "embedder"),
        ("--generator", "generator"),
        ("--inverter", "model_path"),
    ):
        value = getattr(used, setting)
        shown = "the model's own" if value is None else getattr(value, "value", value)
        assert f"default: EMBED2PROMPT_{setting.upper()}, else {shown}" in str(helps[option])
    assert used.rate_limit_tier.value == "tier_2"
    printed = " ".join(run("invert", "--help", timeout=60).stdout.split())
    assert "tier_1..tier_5 (default: EMBED2PROMPT_RATE_LIMIT_TIER, else tier_2)" in printed


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["invert", "in.npy", "-o", "out dir/o.jsonl", "--steps", "2"],
         "embed2prompt invert in.npy -o 'out dir/o.jsonl' --steps 2"),
        (["invert", "in.npy", "-o", "o.jsonl", "--base-url", "http://u:secret@h:8/v1"],
         "embed2prompt invert in.npy -o o.jsonl --base-url 'http://***@h:8/v1'"),
        (["embed", "t.txt", "-o", "o.npy", "--base=http://h/v1?key=secret"],
         "embed2prompt embed t.txt -o o.npy '--base=http://h/v1?***'"),
        (["embed", "t.txt", "-o", "o.npy", "--base-url", "http://localhost:8080/v1"],
         "embed2prompt embed t.txt -o o.npy --base-url http://localhost:8080/v1"),
    ],
)  # fmt: skip
def test_the_resume_hint_is_the_whole_command_without_credentials(
    argv: list[str], shown: str
) -> None:
    from embed2prompt.cli import _command_line

    assert _command_line(argv) == shown
    assert "secret" not in _command_line(argv)

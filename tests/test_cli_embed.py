"""``embed2prompt embed``, run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embed2prompt.openai_api.tokens import count_tokens
from embed2prompt.testing import OpenAITestServer
from tests.conftest import TEST_KEY
from tests.test_cli import as_a_user

pytestmark = pytest.mark.slow  # each test runs the command line in a new process (seconds each)


def embed(
    *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "embed2prompt", "embed", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_txt_to_npy(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("first text\n\nsecond text\nthird text\n")
    result = embed(str(source), "-o", str(tmp_path / "out.npy"))
    assert result.returncode == 0, result.stderr
    vectors = np.load(tmp_path / "out.npy")
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_jsonl_to_jsonl_keeps_ids_and_flags_truncation(tmp_path: Path) -> None:
    source = tmp_path / "texts.jsonl"
    rows = [{"id": "a", "text": "short text"}, {"id": "b", "text": "long " * 400}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = embed(str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in out] == ["a", "b"]
    assert len(out[0]["embedding"]) == 384
    assert "truncated" not in out[0]
    assert out[1]["truncated"] is True
    assert "1 texts were longer" in result.stderr


def test_bad_inputs_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "wrong field"}\n')
    cases = [
        ((str(bad), "-o", str(tmp_path / "o.npy")), "bad.jsonl:2: 'text' must be"),
        ((str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o.npy")), "no such file"),
        ((str(bad), "-o", str(tmp_path / "o.csv")), "expected .npy or .jsonl"),
        ((str(bad), "-o", str(tmp_path / "nowhere" / "o.npy")), "does not exist"),
    ]
    for args, message in cases:
        result = embed(*args)
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.npy").exists()


def test_openai_embedder_without_key_names_the_variable(tmp_path: Path) -> None:
    source = tmp_path / "t.txt"
    source.write_text("hello\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = embed(str(source), "-o", str(tmp_path / "o.npy"), "--embedder", "openai", env=env)
    assert result.returncode == 2
    assert "OPENAI_API_KEY is not set" in result.stderr


MISTAKES = [
    "a file as its folder",
    "a file further up",
    "a folder named like the output",
    "its lock a folder",
    "its journal a folder",
    "a place no one may write",
    "the input itself",
    "a missing folder",
    "an unsupported type",
]


def _output_mistake(tmp_path: Path, source: Path, mistake: str) -> tuple[str, str]:
    """An output path that cannot be written, and what the one line says about it."""
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "named.npy").mkdir()
    (tmp_path / "locked.npy.lock").mkdir()
    (tmp_path / "journal.npy.partial").mkdir()
    return {
        "a file as its folder": (str(tmp_path / "a_file" / "o.npy"), "a_file is a file"),
        "a file further up": (str(tmp_path / "a_file" / "deeper" / "o.npy"), "a_file is a file"),
        "a folder named like the output": (str(tmp_path / "named.npy"), "is a folder"),
        "its lock a folder": (str(tmp_path / "locked.npy"), "locked.npy.lock: Is a directory"),
        "its journal a folder": (str(tmp_path / "journal.npy"), "partial: Is a directory"),
        "a place no one may write": ("/sys/embed2prompt-test.npy", "Permission denied"),
        "the input itself": (str(source), "is the input"),
        "a missing folder": (str(tmp_path / "nowhere" / "o.npy"), "does not exist"),
        "an unsupported type": (str(tmp_path / "o.csv"), "unsupported output type '.csv'"),
    }[mistake]


@pytest.mark.parametrize("mistake", MISTAKES)
def test_an_output_path_that_cannot_be_written_is_exit_2_in_one_line(
    tmp_path: Path, mistake: str
) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"text": "hello"}) + "\n")
    before = source.read_bytes()
    output, message = _output_mistake(tmp_path, source, mistake)
    result = embed(str(source), "-o", output)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"embed2prompt: error: {output}: ")
    assert message in line
    assert source.read_bytes() == before


def test_a_read_only_folder_is_exit_2_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("hello\n")
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    output = folder / "o.npy"
    result = embed(str(source), "-o", str(output), prefix=as_a_user())
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"embed2prompt: error: {output}: cannot write the output here")
    assert "Permission denied" in line
    assert list(folder.iterdir()) == []


def _openai(server: OpenAITestServer, *args: str) -> list[str]:
    """``embed`` ARGS on the test server, with 8-dimensional vectors (small files)."""
    return [*args, "--embedder", "openai", "--base-url", server.url, "--no-progress"]


OPENAI_ENV = {
    "OPENAI_API_KEY": TEST_KEY,
    "EMBED2PROMPT_EMBEDDING_DIMENSIONS": "8",
    "EMBED2PROMPT_TOKENS_PER_MINUTE": "1000000000",  # no pacing: the server is local
}


def _environment() -> dict[str, str]:
    return {**os.environ, **OPENAI_ENV}


@pytest.mark.parametrize(
    ("count", "text"),
    [(5000, "a short text"), (3000, "word " * 150)],  # inputs fill requests; tokens do
)
def test_openai_requests_are_packed_up_to_2048_inputs_and_300000_tokens(
    tmp_path: Path, server: OpenAITestServer, count: int, text: str
) -> None:
    source = tmp_path / "texts.txt"
    source.write_text((text + "\n") * count)
    output = tmp_path / "out.npy"
    result = embed(*_openai(server, str(source), "-o", str(output)), env=_environment())
    assert result.returncode == 0, result.stderr
    assert np.load(output).shape == (count, 8)
    sent = [a for a in server.stats()["arrivals"] if a["path"].endswith("/embeddings")]
    per_request = min(2048, 300_000 // count_tokens(text))
    assert len(sent) == -(-count // per_request)  # as few requests as the limits allow
    assert max(a["tokens"] for a in sent) <= 300_000
    assert sum(a["tokens"] for a in sent) == count * count_tokens(text)


def _texts(tmp_path: Path, count: int) -> Path:
    source = tmp_path / "texts.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": f"text {i}"}) + "\n" for i in range(count))
    )
    return source


def _wait_for_bytes(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not (path.is_file() and path.stat().st_size > 0):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote nothing"
        time.sleep(0.05)  # polling another process's output file, not waiting on a clock


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "embed2prompt", "embed", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )


COUNT = 40_000  # three calls of 16,384 texts (8 requests of 2,048 each)


def test_sigterm_writes_the_chunk_in_progress_and_the_same_command_resumes(
    tmp_path: Path, server: OpenAITestServer
) -> None:
    source = _texts(tmp_path, COUNT)
    output = tmp_path / "out.npy"
    args = _openai(server, str(source), "-o", str(output))
    server.configure(latency_ms=400)
    process = _start(*args)
    _wait_for_bytes(tmp_path / "out.npy.partial", process)  # the first chunk is written
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "finishing the texts in progress" in stderr
    assert stderr.rstrip().endswith("\n  " + shlex.join(["embed2prompt", "embed", *args]))
    assert not output.exists()
    server.configure(latency_ms=0)
    server.reset()
    resumed = embed(*args, env=_environment())
    assert resumed.returncode == 0, resumed.stderr
    (done,) = re.findall(r"resuming: (\d+) of 40000 texts", resumed.stderr)
    assert int(done) in (16_384, 32_768)
    inputs = server.stats()["succeeded_inputs"]  # the resumed run sent only the rest
    assert sum(inputs.values()) == COUNT - int(done)
    assert "text 0" not in inputs
    fresh = tmp_path / "fresh.npy"
    assert (
        embed(*_openai(server, str(source), "-o", str(fresh)), env=_environment()).returncode == 0
    )
    assert np.array_equal(np.load(output), np.load(fresh))
    assert not (tmp_path / "out.npy.partial").exists()


def test_a_killed_run_resumes_after_the_last_whole_line(
    tmp_path: Path, server: OpenAITestServer
) -> None:
    source = _texts(tmp_path, COUNT)
    output = tmp_path / "out.jsonl"
    args = _openai(server, str(source), "-o", str(output))
    server.configure(latency_ms=400)
    process = _start(*args)
    _wait_for_bytes(output, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with output.open("a") as handle:
        handle.write('{"id": "t99999", "text": "cut sh')  # as a full disk would leave
    server.configure(latency_ms=0)
    resumed = embed(*args, env=_environment())
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: " in resumed.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"t{i}" for i in range(COUNT)]
    fresh = tmp_path / "fresh.jsonl"
    assert (
        embed(*_openai(server, str(source), "-o", str(fresh)), env=_environment()).returncode == 0
    )
    assert output.read_bytes() == fresh.read_bytes()


def test_the_output_of_another_input_is_refused_not_mixed(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("first text\nsecond text\n")
    output = tmp_path / "out.jsonl"
    assert embed(str(source), "-o", str(output)).returncode == 0
    again = embed(str(source), "-o", str(output))  # done already: nothing to do
    assert again.returncode == 0, again.stderr
    assert "embedded 0 texts" in again.stderr
    source.write_text("another text\nsecond text\n")
    result = embed(str(source), "-o", str(output))
    assert result.returncode == 2
    assert "out.jsonl:1: is not the embedding of the input's text 1" in result.stderr
    assert len(output.read_text().splitlines()) == 2

"""``embed2prompt embed``, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def embed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embed2prompt", "embed", *args],
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

"""The batch run on Ray Data (a local Ray instance): the same output as the single-process
run, folders of inputs, resume, and failures that stay with their rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embed2prompt.batch.ray_engine import InvertShards, plan_shards, shard_size
from embed2prompt.batch.readers import input_files
from embed2prompt.batch.run import BatchOptions
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.settings import Settings
from tests.test_cli import run

TEXTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "Explain how a hash table works.",
    "What is the capital of France?",
    "Summarise the meeting notes in three bullet points.",
    "Translate good morning into Spanish.",
]
ARGS = ("--steps", "1", "--no-progress")


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return LocalEmbedder().embed_sync(TEXTS)


def by_index(path: Path) -> dict[int, dict]:
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    indices = [row["index"] for row in rows]
    assert len(indices) == len(set(indices)), "a row written twice"
    return {row["index"]: row for row in rows}


def test_ray_writes_what_the_single_process_engine_writes(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    rows = np.vstack([vectors, np.full((1, 384), np.nan, dtype=np.float32)])
    source = tmp_path / "vectors.npy"
    np.save(source, rows)
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert run("invert", str(source), "-o", str(local), *ARGS, timeout=600).returncode == 1
    result = run("invert", str(source), "-o", str(ray), *ARGS, "--engine", "ray", timeout=600)
    assert result.returncode == 1, result.stderr  # the NaN row failed, the others did not
    expected, got = by_index(local), by_index(ray)
    assert sorted(got) == list(range(7))
    for index, row in expected.items():
        assert got[index]["prompt"] == row["prompt"]
        assert got[index]["success"] == row["success"]
        assert got[index]["error"] == row["error"]
        if row["success"]:
            assert got[index]["prompt_similarity"] == pytest.approx(
                row["prompt_similarity"], abs=1e-4
            )
    assert "NaN" in got[6]["error"]


def test_ray_reads_a_folder_and_resumes(tmp_path: Path, vectors: np.ndarray) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "a.npy", vectors[:4])
    (folder / "b.jsonl").write_text(
        "".join(
            json.dumps({"id": f"b{i}", "embedding": vector.tolist()}) + "\n"
            for i, vector in enumerate(vectors[4:])
        )
    )
    output = tmp_path / "prompts.parquet"
    journal = tmp_path / "prompts.parquet.partial.jsonl"
    journal.write_text(  # an earlier run finished row 0
        json.dumps({"index": 0, "id": "0", "prompt": "kept", "success": True}) + "\n"
    )
    result = run("invert", str(folder), "-o", str(output), *ARGS, "--engine", "ray", "--json")
    assert result.returncode == 0, result.stderr
    rows = by_index(output)
    assert sorted(rows) == list(range(6))
    assert rows[0]["prompt"] == "kept"  # resumed, not redone
    assert [rows[i]["id"] for i in range(6)] == ["0", "1", "2", "3", "b0", "b1"]
    assert json.loads(result.stdout)["total_processed"] == 6
    assert not journal.exists()


def test_a_failed_shard_becomes_failed_rows_not_a_failed_dataset(tmp_path: Path) -> None:
    actor = InvertShards("models/best_model.pt", Settings(refinement_steps=0), BatchOptions(), 1)
    batch = {
        "path": [str(tmp_path / "vanished.npy")],
        "first_index": [0],
        "start": [0],
        "stop": [3],
        "pending": [[0, 2]],
    }
    records = [json.loads(line) for line in actor(batch)["record"]]
    assert [record["index"] for record in records] == [0, 2]
    assert all(not record["success"] for record in records)
    assert "vanished.npy" in records[0]["error"]


def test_shards_cover_only_the_rows_left(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((40, 3), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.ones((10, 3), dtype=np.float32))
    files = input_files(tmp_path)
    done = np.zeros(50, dtype=bool)
    done[:16] = True
    done[45] = True
    shards = list(plan_shards(files, done, rows_per_shard=16))
    pending = [index for shard in shards for index in shard["pending"]]
    assert pending == [*range(16, 45), *range(46, 50)]
    assert {shard["start"] for shard in shards if shard["path"].endswith("b.npy")} == {0}
    assert shard_size(10_000, actors=2) == 256
    assert shard_size(100, actors=2) == 16

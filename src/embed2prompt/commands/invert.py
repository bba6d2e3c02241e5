"""``embed2prompt invert``: a file of embeddings in, a file of prompts out.

Each input row is checked on its own: a malformed row becomes that row's
``success: false`` with its error, and every other row is still inverted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from embed2prompt.errors import InputError
from embed2prompt.inversion.inference import EmbeddingToPromptInference, check_embeddings

BATCH = 32


def read_embeddings(path: Path) -> list[tuple[str, Any]]:
    """(id, raw vector) per row of a ``.npy`` or ``.jsonl`` file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise InputError(f"{path}: not a numeric .npy array ({error})") from None
        if array.ndim != 2:
            raise InputError(
                f"{path}: expected a 2-D array (rows of vectors), got shape {array.shape}"
            )
        return [(str(index), row) for index, row in enumerate(array)]
    if suffix == ".jsonl":
        rows: list[tuple[str, Any]] = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                if not isinstance(record, dict) or "embedding" not in record:
                    raise InputError(
                        f"{path}:{number}: expected an object with an 'embedding' field"
                    )
                rows.append((str(record.get("id", len(rows))), record["embedding"]))
        if not rows:
            raise InputError(f"{path}: no rows found")
        return rows
    raise InputError(f"{path}: unsupported input type {suffix!r}; expected .npy or .jsonl")


def run_invert(
    input_path: Path,
    output_path: Path,
    *,
    model: Path,
    steps: int,
    beam: int,
    edits: int,
    progress: bool,
) -> int:
    """Returns the number of rows that failed."""
    if output_path.suffix.lower() != ".jsonl":
        raise InputError(f"{output_path}: unsupported output type; expected .jsonl")
    rows = read_embeddings(input_path)
    inverter = EmbeddingToPromptInference(model)
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, np.ndarray[Any, Any]]] = []
    for index, (identifier, raw) in enumerate(rows):
        record: dict[str, Any] = {
            "index": index,
            "id": identifier,
            "prompt": None,
            "prompt_similarity": None,
            "success": False,
            "error": None,
        }
        try:
            valid.append((index, check_embeddings(raw, inverter.dimension)[0]))
        except InputError as error:
            record["error"] = str(error).replace("embedding 0 ", "the embedding ", 1)
        results.append(record)
    with tqdm(total=len(valid), unit="vector", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(valid), BATCH):
            chunk = valid[start : start + BATCH]
            found = inverter.invert_batch(
                np.stack([vector for _, vector in chunk]), steps=steps, beam=beam, edits=edits
            )
            for (index, _), result in zip(chunk, found, strict=True):
                results[index].update(
                    prompt=result.prompt, success=True, prompt_similarity=round(result.cosine, 6)
                )
            bar.update(len(chunk))
    partial = output_path.with_name(output_path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for record in results:
            handle.write(json.dumps(record) + "\n")
    partial.replace(output_path)
    failed = sum(not record["success"] for record in results)
    print(
        f"inverted {len(results) - failed} of {len(results)} vectors into {output_path}",
        file=sys.stderr,
    )
    return failed

"""Reading texts (``embed``, ``bank add``) and writing embeddings (``embed``).

Inputs: ``.txt`` (one text a line, blank lines skipped) or ``.jsonl`` (field ``text``,
optional ``id``). Outputs: ``.npy`` (rows in input order) or ``.jsonl`` (``id``, ``text``,
``embedding``, and ``truncated`` when the text was cut to the model's window).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from embed2prompt.embedders.base import Vectors
from embed2prompt.errors import InputError

TEXT_INPUTS = (".txt", ".jsonl")
EMBEDDING_OUTPUTS = (".npy", ".jsonl")


@dataclass(frozen=True, slots=True)
class TextRecord:
    id: str
    text: str


def read_texts(path: Path) -> list[TextRecord]:
    """Every text of a ``.txt`` or ``.jsonl`` file, with a clear error for bad lines."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_INPUTS:
        raise InputError(f"{path}: unsupported input type {suffix!r}; expected .txt or .jsonl")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as handle:
            records = list(_read_jsonl(path, handle) if suffix == ".jsonl" else _read_txt(handle))
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not records:
        raise InputError(f"{path}: no texts found; expected at least one non-blank line")
    return records


def _read_txt(handle: IO[str]) -> Iterator[TextRecord]:
    for number, line in enumerate(handle, start=1):
        text = line.rstrip("\n")
        if text.strip():
            yield TextRecord(id=str(number), text=text)


def _read_jsonl(path: Path, handle: IO[str]) -> Iterator[TextRecord]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object with a 'text' field")
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{number}: 'text' must be a non-empty string, got {text!r}")
        identifier = row.get("id", number)
        yield TextRecord(id=str(identifier), text=text)


def check_output_path(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in EMBEDDING_OUTPUTS:
        raise InputError(f"{path}: unsupported output type {suffix!r}; expected .npy or .jsonl")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")


def write_embeddings(
    path: Path, records: list[TextRecord], vectors: Vectors, truncated: list[bool]
) -> None:
    """Write atomically: a crash never leaves a half-written output file behind."""
    check_output_path(path)
    partial = path.with_name(path.name + ".partial")
    if path.suffix.lower() == ".npy":
        with partial.open("wb") as handle:
            np.save(handle, vectors.astype(np.float32))
    else:
        with partial.open("w", encoding="utf-8") as handle:
            for record, vector, cut in zip(records, vectors, truncated, strict=True):
                row: dict[str, object] = {
                    "id": record.id,
                    "text": record.text,
                    "embedding": [round(float(x), 7) for x in vector],
                }
                if cut:
                    row["truncated"] = True
                handle.write(json.dumps(row) + "\n")
    partial.replace(path)

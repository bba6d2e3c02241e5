"""Files of embeddings read as a stream of rows, so a million of them run in flat memory.

``.npy`` (a 2-D array, memory-mapped), ``.jsonl`` (an object a line with an
``embedding`` field and an optional ``id``) and ``.parquet`` (a list column
``embedding``, an optional ``id`` column; read a record batch at a time). A file that
cannot be read at all is an :class:`InputError` naming it; a row that is malformed is
that row's problem (its ``error``), and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.errors import InputError

FORMATS = (".npy", ".jsonl", ".parquet")


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its position in the file, its id, and the raw vector (unchecked),
    or why the row could not be read."""

    index: int
    id: str
    vector: Any
    error: str | None = None


class EmbeddingFile:
    """A file of embeddings: its row count, and its rows in order."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        self.path = path
        self.format = path.suffix.lower()
        if self.format not in FORMATS:
            raise InputError(
                f"{path}: unsupported input type {self.format!r}; expected .npy, .jsonl or .parquet"
            )
        self.rows_total = self._count()

    def rows(self) -> Iterator[Row]:
        if self.format == ".npy":
            return self._npy_rows()
        if self.format == ".jsonl":
            return self._jsonl_rows()
        return self._parquet_rows()

    def _count(self) -> int:
        if self.format == ".npy":
            return int(self._npy().shape[0])
        if self.format == ".jsonl":
            with self.path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        return int(self._parquet().metadata.num_rows)

    # .npy ---------------------------------------------------------------------------
    def _npy(self) -> np.memmap[Any, Any]:
        """The array, memory-mapped: its shape and type without reading it."""
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise InputError(f"{self.path}: not a numeric .npy array ({error})") from None
        if array.ndim != 2:
            raise InputError(
                f"{self.path}: expected a 2-D array (rows of vectors), got shape {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{self.path}: expected numbers, got dtype {array.dtype}")
        if not isinstance(array, np.memmap):
            raise InputError(f"{self.path}: not a .npy array file")
        return array

    def _npy_rows(self) -> Iterator[Row]:
        # Read a block of rows at a time rather than through the memory map: a map's
        # pages stay in the process's resident memory once touched, so a 10 GB file would
        # look like a 10 GB process.
        array = self._npy()
        rows, dimension = array.shape
        if array.flags.f_contiguous and not array.flags.c_contiguous:
            for index in range(rows):  # column-major (rare): rows are not contiguous
                yield Row(index, str(index), np.array(array[index]))
            return
        dtype, offset = array.dtype, array.offset
        del array
        block = 1024
        with self.path.open("rb") as handle:
            handle.seek(offset)
            for first in range(0, rows, block):
                count = min(block, rows - first)
                data = handle.read(count * dimension * dtype.itemsize)
                vectors = np.frombuffer(data, dtype=dtype).reshape(count, dimension)
                for position, vector in enumerate(vectors):
                    yield Row(first + position, str(first + position), vector)

    # .jsonl -------------------------------------------------------------------------
    def _jsonl_rows(self) -> Iterator[Row]:
        index = 0
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                yield _jsonl_row(line, number, index)
                index += 1

    # .parquet -----------------------------------------------------------------------
    def _parquet(self) -> Any:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except Exception as error:  # pyarrow raises its own several kinds
            raise InputError(f"{self.path}: not a readable Parquet file ({error})") from None
        names = parquet.schema_arrow.names
        if "embedding" not in names:
            raise InputError(
                f"{self.path}: no 'embedding' column (columns: {', '.join(names)}); expected "
                "a list column 'embedding' and an optional 'id'"
            )
        return parquet

    def _parquet_rows(self) -> Iterator[Row]:
        parquet = self._parquet()
        columns = ["embedding"] + (["id"] if "id" in parquet.schema_arrow.names else [])
        index = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            vectors = batch.column("embedding").to_pylist()
            ids = batch.column("id").to_pylist() if "id" in columns else [None] * len(vectors)
            for vector, identifier in zip(vectors, ids, strict=True):
                name = str(identifier) if identifier is not None else str(index)
                if vector is None:
                    yield Row(index, name, None, "the embedding is null")
                else:
                    yield Row(index, name, vector)
                index += 1


def _jsonl_row(line: bytes, number: int, index: int) -> Row:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        message = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        return Row(index, str(index), None, f"line {number} is not valid JSON ({message})")
    if not isinstance(record, dict) or "embedding" not in record:
        return Row(
            index, str(index), None, f"line {number} is not an object with an 'embedding' field"
        )
    identifier = record.get("id")
    return Row(
        index, str(identifier) if identifier is not None else str(index), record["embedding"]
    )

"""Files of embeddings read as a stream of rows, so a million of them run in flat memory.

``.npy`` (a 2-D array of a float or integer dtype, memory-mapped), ``.jsonl`` (an
object a line with an ``embedding`` field, an array of JSON numbers, and an optional
``id``) and ``.parquet`` (a list column ``embedding`` of floats or integers, an optional
``id`` column; read a record batch at a time). A file that cannot be read at all (a
complex or text dtype is such) is an :class:`InputError` naming it; a row that is
malformed is that row's problem (its ``error``), and the others still run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.errors import InputError
from embed2prompt.inputs import REAL_KINDS, json_vector, read_json

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
    """A file of embeddings: its row count, and its rows in order.

    ``first_index`` numbers its rows after those of earlier files (a folder of them);
    a row without an id is named by its number. Errors name the file ``name`` (default:
    its path; the service's uploads are "the upload", not their temporary file).
    """

    def __init__(self, path: Path, first_index: int = 0, *, name: str | None = None) -> None:
        self.first_index = first_index
        self.name = name or str(path)
        if not path.is_file():
            raise InputError(f"{self.name}: no such file")
        self.path = path
        self.format = path.suffix.lower()
        if self.format not in FORMATS:
            raise InputError(
                f"{self.name}: unsupported input type {self.format!r}; expected .npy, .jsonl "
                "or .parquet"
            )
        self.rows_total = self._count()

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[Row]:
        """Rows ``start`` to ``stop`` (positions in this file) in order."""
        stop = self.rows_total if stop is None else min(stop, self.rows_total)
        if self.format == ".npy":
            return self._npy_rows(start, stop)
        rows = self._jsonl_rows() if self.format == ".jsonl" else self._parquet_rows()
        return islice(rows, start, stop)

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
            raise InputError(f"{self.name}: not a numeric .npy array ({error})") from None
        if array.ndim != 2:
            raise InputError(
                f"{self.name}: expected a 2-D array (rows of vectors), got shape {array.shape}"
            )
        if array.dtype.kind not in REAL_KINDS:  # complex, boolean, text, dates, records
            raise InputError(
                f"{self.name}: expected real numbers (a float or integer dtype), got dtype "
                f"{array.dtype}"
            )
        if not isinstance(array, np.memmap):
            raise InputError(f"{self.name}: not a .npy array file")
        return array

    def _npy_rows(self, start: int, stop: int) -> Iterator[Row]:
        # Read a block of rows at a time rather than through the memory map: a map's
        # pages stay in the process's resident memory once touched, so a 10 GB file would
        # look like a 10 GB process.
        array = self._npy()
        dimension = array.shape[1]
        if array.flags.f_contiguous and not array.flags.c_contiguous:
            for position in range(start, stop):  # column-major (rare): rows not contiguous
                yield self._row(position, None, np.array(array[position]))
            return
        dtype, offset = array.dtype, array.offset
        del array
        block = 1024
        row_bytes = dimension * dtype.itemsize
        with self.path.open("rb") as handle:
            handle.seek(offset + start * row_bytes)
            for first in range(start, stop, block):
                count = min(block, stop - first)
                data = handle.read(count * row_bytes)
                vectors = np.frombuffer(data, dtype=dtype).reshape(count, dimension)
                for position, vector in enumerate(vectors, start=first):
                    yield self._row(position, None, vector)

    def _row(self, position: int, identifier: object, vector: Any, error: str | None = None) -> Row:
        index = self.first_index + position
        name = str(identifier) if identifier is not None else str(index)
        return Row(index, name, vector, error)

    # .jsonl -------------------------------------------------------------------------
    def _jsonl_rows(self) -> Iterator[Row]:
        position = 0
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                identifier, vector, error = _jsonl_row(line, number)
                yield self._row(position, identifier, vector, error)
                position += 1

    # .parquet -----------------------------------------------------------------------
    def _parquet(self) -> Any:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except Exception as error:  # pyarrow raises its own several kinds
            raise InputError(f"{self.name}: not a readable Parquet file ({error})") from None
        names = parquet.schema_arrow.names
        if "embedding" not in names:
            raise InputError(
                f"{self.name}: no 'embedding' column (columns: {', '.join(names)}); expected "
                "a list column 'embedding' and an optional 'id'"
            )
        column = parquet.schema_arrow.field("embedding").type
        if not _is_list_of_real_numbers(column):
            raise InputError(
                f"{self.name}: the 'embedding' column holds {column}; expected a list of "
                "real numbers (floats or integers) a row"
            )
        return parquet

    def _parquet_rows(self) -> Iterator[Row]:
        parquet = self._parquet()
        columns = ["embedding"] + (["id"] if "id" in parquet.schema_arrow.names else [])
        position = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            vectors = batch.column("embedding").to_pylist()
            ids = batch.column("id").to_pylist() if "id" in columns else [None] * len(vectors)
            for vector, identifier in zip(vectors, ids, strict=True):
                error = "the embedding is null" if vector is None else None
                yield self._row(position, identifier, vector, error)
                position += 1


def _is_list_of_real_numbers(column: Any) -> bool:
    """Whether an Arrow type is a list (of any kind) of integers or floats."""
    import pyarrow as pa

    kinds = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    if not any(is_kind(column) for is_kind in kinds):
        return False
    value = column.value_type
    return bool(pa.types.is_integer(value) or pa.types.is_floating(value))


def _jsonl_row(line: bytes, number: int) -> tuple[object, Any, str | None]:
    """(id, vector, error) of one line: its embedding must be an array of JSON numbers
    (:func:`~embed2prompt.inputs.json_vector`), or the line is that row's error."""
    identifier = None
    try:
        record = read_json(line, f"line {number}", "an object with an 'embedding' field")
        if not isinstance(record, dict) or "embedding" not in record:
            return None, None, f"line {number} is not an object with an 'embedding' field"
        identifier = record.get("id")
        return identifier, json_vector(record["embedding"], f"line {number}: the embedding"), None
    except InputError as error:
        return identifier, None, str(error)


def input_files(path: Path) -> list[EmbeddingFile]:
    """A file, or every input file of a folder (sorted by name), numbered one after the
    other."""
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS and p.is_file())
        if not paths:
            raise InputError(f"{path}: no .npy, .jsonl or .parquet files in this folder")
    else:
        paths = [path]
    files: list[EmbeddingFile] = []
    first = 0
    for each in paths:
        files.append(EmbeddingFile(each, first_index=first))
        first += files[-1].rows_total
    return files


class EmbeddingInputs:
    """A file or a folder of them, read as one sequence of rows."""

    def __init__(self, path: Path) -> None:
        self.files = input_files(path)
        self.rows_total = sum(file.rows_total for file in self.files)

    def rows(self) -> Iterator[Row]:
        for file in self.files:
            yield from file.rows()

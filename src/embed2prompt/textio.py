"""Reading texts (``embed``, ``bank add``) and writing embeddings (``embed``).

Inputs: ``.txt`` (one text a line, blank lines skipped) or ``.jsonl`` (field ``text``,
optional ``id``). Outputs: ``.npy`` (rows in input order) or ``.jsonl`` (``id``, ``text``,
``embedding``, and ``truncated`` when the text was cut to the model's window), written
as the embeddings come, so that a stopped run resumes (:class:`EmbeddingLog`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from embed2prompt.batch.output import (
    append_whole,
    cannot_write,
    check_output_path,
    cut_partial_line,
    lock_output,
)
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


class EmbeddingLog:
    """The embeddings written so far (by earlier runs too) and the file new ones go to,
    so that ``embed`` stopped in any way, ``kill -9`` included, resumes where it stopped.

    ``.jsonl``: the output itself, a line per text in input order, each line appended
    with one write; a line cut short is removed on resume, and the lines kept must be
    the input's first texts (same ``id`` and ``text``). ``.npy``: journalled to
    ``OUTPUT.npy.partial``, appended a chunk at a time as complete ``.npy`` arrays of
    float32 rows (one write each; a chunk cut short is removed on resume), and written to
    ``OUTPUT.npy`` when every text is done. One run at a time per output (``OUTPUT.lock``).
    """

    def __init__(self, path: Path, *, input_path: Path | None = None) -> None:
        check_output_path(path, EMBEDDING_OUTPUTS, create_folders=False, input_path=input_path)
        self.path = path
        self.format = path.suffix.lower()
        self.journal = path if self.format == ".jsonl" else path.with_name(path.name + ".partial")
        self.done = 0  # texts written, from the first in input order
        self.total = 0
        self.dimension: int | None = None
        self._file: IO[bytes] | None = None
        self._lock: IO[str] | None = None

    def resume(self, records: Sequence[TextRecord]) -> int:
        """Take the output and open it for appending after the texts already written
        (``records`` is the whole input); the number of those texts."""
        if self._lock is None:
            self._lock = lock_output(self.path)
        self.total = len(records)
        try:
            if self.format == ".jsonl":
                cut_partial_line(self.journal)
                self.done = self._check_lines(records)
            else:
                self.done = self._check_chunks()
            self._file = self.journal.open("ab", buffering=0)
        except OSError as error:  # the journal is a folder, say
            raise cannot_write(self.path, error) from None
        return self.done

    def write(self, records: Sequence[TextRecord], vectors: Vectors, truncated: list[bool]) -> None:
        """Append the embeddings of the next ``records`` in input order."""
        assert self._file is not None, "call resume() first"
        dimension = int(vectors.shape[1])
        if self.dimension is not None and dimension != self.dimension:
            raise InputError(
                f"{self.journal}: holds {self.dimension}-dimensional embeddings, but this "
                f"run's embedder gives {dimension}; use the embedder of the earlier run, or "
                "delete the file to start again"
            )
        self.dimension = dimension
        if self.format == ".npy":
            chunk = io.BytesIO()
            np.lib.format.write_array(chunk, vectors.astype("<f4"), allow_pickle=False)
            append_whole(self._file, chunk.getvalue())
        else:
            for record, vector, cut in zip(records, vectors, truncated, strict=True):
                row: dict[str, object] = {
                    "id": record.id,
                    "text": record.text,
                    "embedding": [round(float(x), 7) for x in vector],
                }
                if cut:
                    row["truncated"] = True
                append_whole(self._file, json.dumps(row).encode() + b"\n")
        self.done += len(records)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def close(self) -> None:
        """Flush to disk; for ``.npy`` output with every text done, write the ``.npy``
        (to a temporary file, renamed: the path never holds half a file)."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if self.format == ".npy" and self.complete and self.journal.is_file():
            self._write_npy()
            self.journal.unlink()
        if self._lock is not None:
            self._lock.close()  # released, not deleted (see ResultLog.close)
            self._lock = None

    def _check_lines(self, records: Sequence[TextRecord]) -> int:
        """The lines of an earlier run, each the embedding of the input's text there."""
        if not self.journal.is_file():
            return 0
        done = 0
        with self.journal.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    row = json.loads(line)
                    same = done < len(records) and (
                        str(row["id"]) == records[done].id and row["text"] == records[done].text
                    )
                    dimension = len(row["embedding"])
                except (ValueError, KeyError, TypeError):
                    raise InputError(
                        f"{self.journal}:{number}: not a line that embed writes; is this "
                        "file another program's? Choose another output"
                    ) from None
                if not same:
                    raise InputError(
                        f"{self.journal}:{number}: is not the embedding of the input's text "
                        f"{done + 1}; is this the output of another input? Delete it or "
                        "choose another output"
                    )
                self.dimension = self.dimension or dimension
                done += 1
        return done

    def _check_chunks(self) -> int:
        """The rows of an earlier run's journal; a chunk cut short is cut off."""
        if not self.journal.is_file():
            return 0
        rows = 0
        with self.journal.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            kept = 0
            for count, dimension, _, end in _npy_chunks(handle, size):
                if self.dimension not in (None, dimension) or rows + count > self.total:
                    raise InputError(
                        f"{self.journal}: is not an earlier run's embeddings of this input; "
                        "delete it to start again"
                    )
                self.dimension = dimension
                rows += count
                kept = end
            if kept != size:
                handle.truncate(kept)
        return rows

    def _write_npy(self) -> None:
        """The journal's chunks as one ``.npy`` array, copied a piece at a time."""
        assert self.dimension is not None
        temporary = self.path.with_name(self.path.name + ".tmp")
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.total, self.dimension)}
        with self.journal.open("rb") as source, temporary.open("wb") as target:
            np.lib.format.write_array_header_1_0(target, header)
            size = source.seek(0, os.SEEK_END)
            source.seek(0)
            for _, _, start, end in _npy_chunks(source, size):
                source.seek(start)
                while start < end:
                    piece = source.read(min(end - start, 1 << 20))
                    target.write(piece)
                    start += len(piece)
        temporary.replace(self.path)


def _npy_chunks(handle: IO[bytes], size: int) -> Iterator[tuple[int, int, int, int]]:
    """(rows, dimension, start, end of the data) of each whole float32 ``.npy`` array
    in the first ``size`` bytes of ``handle``, from its position; stops before an array
    cut short (or anything else)."""
    while handle.tell() < size:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        except (ValueError, SyntaxError):
            return
        if len(shape) != 2 or fortran or dtype != np.dtype("<f4"):
            return
        start = handle.tell()
        end = start + shape[0] * shape[1] * 4
        if end > size:
            return
        yield int(shape[0]), int(shape[1]), start, end
        handle.seek(end)

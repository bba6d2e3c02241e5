"""The output of a batch run: one record per input row, written as each row finishes,
so that running the same command again resumes where the last run stopped.

Records are appended to a JSON-lines journal, each line with a single ``write`` call on
an unbuffered file: a run killed at any moment leaves whole lines, plus at most one cut
short by a full disk or a machine crash, which the next run cuts off. For ``.jsonl``
output the journal is the output itself. For ``.parquet`` (a format that cannot be
appended to) it is ``OUTPUT.parquet.partial.jsonl``, converted to Parquet when every row
is done.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import InputError

OUTPUT_FORMATS = (".jsonl", ".parquet")
FIELDS = (
    "index",
    "id",
    "prompt",
    "prompt_similarity",
    "similarity",
    "best_variant",
    "success",
    "error",
    "processing_time",
)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a results file (``.jsonl`` or ``.parquet``), in file order."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises its own several kinds
            raise InputError(f"{path}: not a readable Parquet file ({error})") from None
        for batch in parquet.iter_batches(batch_size=4096):
            yield from batch.to_pylist()
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return  # a line cut short by a crash: not a record
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict) or "index" not in record:
                raise InputError(f"{path}:{number}: not a result record (no 'index')")
            yield record


class ResultLog:
    """The records written so far (from earlier runs too) and the file new ones go to."""

    def __init__(self, path: Path, rows_total: int) -> None:
        self.path = path
        self.format = path.suffix.lower()
        if self.format not in OUTPUT_FORMATS:
            raise InputError(
                f"{path}: unsupported output type {self.format!r}; expected .jsonl or .parquet"
            )
        self.journal = (
            path if self.format == ".jsonl" else path.with_name(path.name + ".partial.jsonl")
        )
        self.rows_total = rows_total
        self.done: npt.NDArray[np.bool_] = np.zeros(rows_total, dtype=bool)
        self._file: Any = None
        self._lock: Any = None

    def resume(
        self,
        on_record: Callable[[dict[str, Any]], None] = lambda _: None,
        *,
        retry_failed: bool = False,
    ) -> None:
        """Open for appending, keeping the records already written (each passed to
        ``on_record``, so that the caller can count them); with ``retry_failed`` the
        failed ones are dropped, to be run again. A row beyond the input, or written
        twice, makes the output another run's: an error rather than a mix."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_output()
        if self.format == ".parquet" and self.path.is_file() and not self.journal.is_file():
            self._journal_from(read_records(self.path))  # a finished run, resumed or re-run
        kept_bytes = self._cut_partial_line()
        if retry_failed and kept_bytes:
            self._journal_from(r for r in read_records(self.journal) if r.get("success"))
        duplicates = False
        if self.journal.is_file():
            for record in read_records(self.journal):
                index = record["index"]
                if not isinstance(index, int) or not 0 <= index < self.rows_total:
                    raise InputError(
                        f"{self.journal}: row index {index!r} is not in the input (0 to "
                        f"{self.rows_total - 1}); is this the output of another input file?"
                    )
                if self.done[index]:
                    duplicates = True  # only an older version could write one: drop it
                    continue
                self.done[index] = True
                on_record(record)
        if duplicates:
            seen = np.zeros(self.rows_total, dtype=bool)
            self._journal_from(_first_of_each(read_records(self.journal), seen))
        self._file = self.journal.open("ab", buffering=0)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; a row that has one already is not written again."""
        if self.done[record["index"]]:
            return
        line = memoryview(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        while line:  # one write(2) in practice; a short write continues where it stopped
            written = self._file.write(line)
            line = line[written:]
        self.done[record["index"]] = True

    def close(self) -> None:
        """Flush to disk; for Parquet output of a finished run, write the Parquet file."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if self.format == ".parquet" and self.complete and self.journal.is_file():
            write_parquet(read_records(self.journal), self.path)
            self.journal.unlink()
        if self._lock is not None:
            # Released, not deleted: deleting would let a waiting run lock a file that
            # is no longer the one a third run opens.
            self._lock.close()
            self._lock = None

    def _lock_output(self) -> None:
        """One run at a time per output (two would write the same rows twice): an
        exclusive lock on ``OUTPUT.lock``, held until :meth:`close`; the operating system
        drops it if the process dies."""
        self._lock = self.path.with_name(self.path.name + ".lock").open("a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise InputError(
                f"{self.path}: another run is writing this output; wait for it to end"
            ) from None

    def _cut_partial_line(self) -> int:
        """Drop a last line without its newline (a write cut short); the size kept."""
        if not self.journal.is_file():
            return 0
        with self.journal.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            keep = size
            while keep > 0:
                step = min(65536, keep)
                handle.seek(keep - step)
                block = handle.read(step)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    keep = keep - step + newline + 1
                    break
                keep -= step
            if keep != size:
                handle.truncate(keep)
        return keep

    def _journal_from(self, records: Iterator[dict[str, Any]]) -> None:
        """Replace the journal with these records (atomically: a crash keeps the old)."""
        temporary = self.journal.with_name(self.journal.name + ".tmp")
        with temporary.open("wb") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        temporary.replace(self.journal)


def _first_of_each(
    records: Iterator[dict[str, Any]], seen: npt.NDArray[np.bool_]
) -> Iterator[dict[str, Any]]:
    for record in records:
        if not seen[record["index"]]:
            seen[record["index"]] = True
            yield record


def write_parquet(
    records: Iterator[dict[str, Any]], path: Path, rows_per_group: int = 8192
) -> None:
    """The records as Parquet with a fixed schema, a row group at a time (flat memory),
    written to a temporary file and renamed, so the path never holds half a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    variant = pa.struct(
        [("prompt", pa.string()), ("similarity", pa.float64()), ("prompt_similarity", pa.float64())]
    )
    schema = pa.schema(
        [
            ("index", pa.int64()),
            ("id", pa.string()),
            ("prompt", pa.string()),
            ("prompt_similarity", pa.float64()),
            ("similarity", pa.float64()),
            ("best_variant", variant),
            ("success", pa.bool_()),
            ("error", pa.string()),
            ("processing_time", pa.float64()),
        ]
    )
    temporary = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(temporary, schema) as writer:
        group: list[dict[str, Any]] = []
        for record in records:
            group.append({field: record.get(field) for field in FIELDS})
            if len(group) == rows_per_group:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                group = []
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
    temporary.replace(path)

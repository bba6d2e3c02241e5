"""The output of a batch run: one record per input row, written as each row finishes,
so that running the same command again resumes where the last run stopped.

Records are appended to a JSON-lines journal, each line with a single ``write`` call on
an unbuffered file: a run killed at any moment leaves whole lines, plus at most one cut
short by a full disk or a machine crash, which the next run cuts off. For ``.jsonl``
output the journal is the output itself. For ``.parquet`` (a format that cannot be
appended to) it is ``OUTPUT.parquet.partial.jsonl``, converted to Parquet when every row
is done.

:func:`check_output_path` refuses a path that cannot be an output before any work, and
:func:`lock_output` turns an unwritable place into one :class:`InputError` naming it; the
same two serve ``embed2prompt embed`` (:mod:`embed2prompt.textio`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

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


def check_output_path(
    path: Path,
    formats: tuple[str, ...],
    *,
    create_folders: bool = True,
    input_path: Path | None = None,
) -> None:
    """Refuse, before any work, a path that cannot be an output: a type not in
    ``formats``, a folder, a path through a file, a missing folder (unless
    ``create_folders``), the input itself, or a file among the input folder's files (the
    next run would read it, and its journal, as input). An :class:`InputError` naming
    the path and the problem. A place that cannot be written shows when it is opened
    (:func:`lock_output`)."""
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise InputError(
            f"{path}: unsupported output type {suffix!r}; expected {' or '.join(formats)}"
        )
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a folder; name the {suffix} file to write")
        folder = path.parent
        while not folder.exists():  # the nearest folder there is
            folder = folder.parent
        if not folder.is_dir():
            raise InputError(f"{path}: {folder} is a file, not a folder")
        if folder != path.parent and not create_folders:
            raise InputError(f"{path}: folder {path.parent} does not exist")
        if input_path is not None and input_path.exists():
            source = input_path.resolve()
            if path.exists() and path.resolve() == source:
                raise InputError(f"{path}: is the input; write the output to another file")
            if source.is_dir() and path.parent.resolve() == source:
                raise InputError(
                    f"{path}: is in the input folder {input_path}, whose files are read as "
                    "input; write the output elsewhere"
                )
    except OSError as error:  # a folder on the way that cannot be searched, say
        raise cannot_write(path, error) from None


def lock_output(path: Path) -> IO[str]:
    """One run at a time per output (two would write the same rows twice): the folders
    made, then an exclusive lock on ``OUTPUT.lock``, held until the file returned is
    closed; the operating system drops it if the process dies. An output another run
    holds, or a place that cannot be written, is an :class:`InputError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock").open("a")
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise InputError(
            f"{path}: another run is writing this output; wait for it to end"
        ) from None
    return lock


def cannot_write(path: Path, error: OSError) -> InputError:
    """The one line for an output that the system would not let us write."""
    reason = error.strerror or str(error)
    where = "" if error.filename in (None, str(path)) else f"{error.filename}: "
    return InputError(f"{path}: cannot write the output here ({where}{reason})")


def cut_partial_line(path: Path) -> int:
    """Drop a last line without its newline (a write cut short) from ``path``, if it
    exists; the size kept."""
    if not path.is_file():
        return 0
    with path.open("rb+") as handle:
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


def append_whole(handle: IO[bytes], data: bytes) -> None:
    """Append ``data`` to an unbuffered file: one ``write(2)`` in practice; a short
    write (a full disk) continues where it stopped."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written:]


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
        check_output_path(path, OUTPUT_FORMATS)
        self.path = path
        self.format = path.suffix.lower()
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
        if self._lock is None:
            self.lock()
        try:
            self._resume(on_record, retry_failed)
        except OSError as error:  # the journal is a folder, say
            raise cannot_write(self.path, error) from None

    def lock(self) -> None:
        """Take the output (:func:`lock_output`); :meth:`resume` does, if not done yet.
        Early, it refuses an output that cannot be written before any slow work."""
        self._lock = lock_output(self.path)

    def _resume(self, on_record: Callable[[dict[str, Any]], None], retry_failed: bool) -> None:
        if self.format == ".parquet" and self.path.is_file() and not self.journal.is_file():
            self._journal_from(read_records(self.path))  # a finished run, resumed or re-run
        kept_bytes = cut_partial_line(self.journal)
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
        # An existing journal is opened now (one that cannot be written is refused here);
        # a new one is made by the first record, or when the run completes, so that a run
        # stopped before any work (its model missing, say) leaves no empty output.
        if self.journal.exists():
            self._open()

    def _open(self) -> None:
        if self._file is None:
            self._file = self.journal.open("ab", buffering=0)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; a row that has one already is not written again."""
        if self.done[record["index"]]:
            return
        self._open()
        append_whole(self._file, json.dumps(record, ensure_ascii=False).encode() + b"\n")
        self.done[record["index"]] = True

    def close(self) -> None:
        """Flush to disk; for Parquet output of a finished run, write the Parquet file."""
        if self.complete and self._lock is not None:
            self._open()  # a finished run has its output, rows or none (not once closed)
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

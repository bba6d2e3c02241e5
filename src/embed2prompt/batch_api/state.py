"""The state file of a Batch API run: SQLite beside the output, so any step resumes.

Three tables. ``rows``: each input row's target and its evaluation so far (JSON), the
last stage folded into it, and whether it is final. ``requests``: each API request of
each stage, keyed ``STAGE/ROW/SLOT``, with its body, its estimated input tokens, its
attempt, the input file of that attempt, and its answer or error. ``files``: each input
file written, how far it got (``written``, ``uploaded``, ``submitted``, ``ended``,
``downloaded``, ``joined``), its remote file and batch ids, the batch's status and
counts, and whether its remote files (the upload, the batch's output and error files)
have been deleted since it was joined. Every step's outcome is committed before the
next step starts, and a remote call that may have happened without its answer being
recorded (an upload, a batch created) is flagged first, so that the next run looks for
it rather than repeating it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    idx INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    target BLOB,                -- the unit target, float32; NULL for a row that failed
    state TEXT NOT NULL,        -- JSON: the row's evaluation so far
    stage INTEGER NOT NULL,     -- the last stage folded in (0: inverted)
    final INTEGER NOT NULL      -- 1: nothing left to do
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,       -- STAGE/ROW/SLOT
    stage INTEGER NOT NULL,
    row INTEGER NOT NULL,
    endpoint TEXT NOT NULL,     -- /v1/chat/completions, /v1/embeddings, or local:embeddings
    model TEXT NOT NULL,
    body TEXT NOT NULL,
    tokens INTEGER NOT NULL,    -- estimated input tokens
    attempt INTEGER NOT NULL,
    file INTEGER,               -- the input file of this attempt; NULL while pending
    status TEXT NOT NULL,       -- pending, filed, done, failed
    answer TEXT,                -- JSON: {"text": ...} or {"cosines": [...]}
    error TEXT,                 -- the last attempt's error
    failures INTEGER NOT NULL   -- attempts that failed (a full queue or a cancel not counted)
);
CREATE INDEX IF NOT EXISTS requests_by_stage ON requests (stage, status, endpoint, key);
CREATE INDEX IF NOT EXISTS requests_by_file ON requests (file);
CREATE INDEX IF NOT EXISTS requests_by_row ON requests (row, stage);
CREATE INDEX IF NOT EXISTS rows_by_stage ON rows (stage, final);
CREATE TABLE IF NOT EXISTS files (
    number INTEGER PRIMARY KEY,
    stage INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    name TEXT NOT NULL,         -- the upload's filename: unique to this run
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    step TEXT NOT NULL,         -- written, uploaded, submitted, ended, downloaded, joined
    trying TEXT,                -- upload or submit: started, answer not recorded yet
    file_id TEXT,
    batch_id TEXT,
    status TEXT,                -- the batch's last status
    counts TEXT,                -- the batch's request_counts, JSON
    output_file_id TEXT,
    error_file_id TEXT,
    error TEXT,
    cleaned INTEGER NOT NULL DEFAULT 0  -- 1: its remote files deleted (after the join)
);
"""

STEPS = ("written", "uploaded", "submitted", "ended", "downloaded", "joined")


@dataclass(frozen=True, slots=True)
class FileRecord:
    number: int
    stage: int
    endpoint: str
    model: str
    name: str
    requests: int
    tokens: int
    bytes: int
    step: str
    trying: str | None
    file_id: str | None
    batch_id: str | None
    status: str | None
    counts: dict[str, int] | None
    output_file_id: str | None
    error_file_id: str | None
    error: str | None
    cleaned: bool

    @property
    def remote_ids(self) -> list[str]:
        """The ids of the files it has at the server: the upload, the batch's output
        and error files."""
        found = (self.file_id, self.output_file_id, self.error_file_id)
        return [file_id for file_id in found if file_id is not None]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    key: str
    stage: int
    row: int
    endpoint: str
    model: str
    body: str
    tokens: int
    attempt: int
    status: str
    answer: dict[str, Any] | None
    error: str | None

    @property
    def custom_id(self) -> str:
        """The id of this attempt in a batch: the key and the attempt."""
        return f"{self.key}#{self.attempt}"


def parse_custom_id(custom_id: str) -> tuple[str, int] | None:
    key, _, attempt = custom_id.rpartition("#")
    return (key, int(attempt)) if key and attempt.isdigit() else None


class RunState:
    """The state file. One process at a time (the output's lock guards it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process kills
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
        if "cleaned" not in columns:  # a state file written before files were deleted
            self.db.execute("ALTER TABLE files ADD COLUMN cleaned INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ meta

    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))
        )

    def forget(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # ------------------------------------------------------------------ rows

    def rows_stored(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def stored_indices(self, first: int, last: int) -> set[int]:
        found = self.db.execute(
            "SELECT idx FROM rows WHERE idx BETWEEN ? AND ?", (first, last)
        ).fetchall()
        return {index for (index,) in found}

    def add_rows(
        self, rows: list[tuple[int, str, npt.NDArray[np.float32] | None, dict[str, Any], bool]]
    ) -> None:
        """(index, id, target, state, final) of newly inverted rows, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO rows VALUES (?, ?, ?, ?, 0, ?)",
                (
                    (
                        index,
                        identifier,
                        None if target is None else target.astype(np.float32).tobytes(),
                        json.dumps(state),
                        int(final),
                    )
                    for index, identifier, target, state, final in rows
                ),
            )

    def rows_at(
        self, stage: int, after: int, limit: int
    ) -> list[tuple[int, dict[str, Any], npt.NDArray[np.float32] | None]]:
        """Up to ``limit`` rows not final whose last stage is ``stage``, after index
        ``after``: (index, state, target)."""
        found = self.db.execute(
            "SELECT idx, state, target FROM rows WHERE stage = ? AND final = 0 AND idx > ? "
            "ORDER BY idx LIMIT ?",
            (stage, after, limit),
        ).fetchall()
        return [(index, json.loads(state), _vector(target)) for index, state, target in found]

    def target(self, index: int) -> npt.NDArray[np.float32] | None:
        found = self.db.execute("SELECT target FROM rows WHERE idx = ?", (index,)).fetchone()
        return _vector(found[0]) if found else None

    def all_rows(self, after: int, limit: int) -> list[tuple[int, str, dict[str, Any], bool]]:
        found = self.db.execute(
            "SELECT idx, id, state, final FROM rows WHERE idx > ? ORDER BY idx LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            (index, ident, json.loads(state), bool(final)) for index, ident, state, final in found
        ]

    def rows_left(self, stage: int) -> int:
        """Rows not final that have not folded ``stage`` in yet."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM rows WHERE final = 0 AND stage < ?", (stage,)
            ).fetchone()[0]
        )

    # ------------------------------------------------------------------ requests

    def requests_of(self, stage: int, row: int) -> dict[str, RequestRecord]:
        found = self.db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE row = ? AND stage = ?", (row, stage)
        ).fetchall()
        return {record.key: record for record in map(_request, found)}

    def pending(self, stage: int, endpoint: str, after: str, limit: int) -> list[RequestRecord]:
        found = self.db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE stage = ? AND status = 'pending' "
            "AND endpoint = ? AND key > ? ORDER BY key LIMIT ?",
            (stage, endpoint, after, limit),
        ).fetchall()
        return [_request(row) for row in found]

    def pending_endpoints(self, stage: int) -> list[str]:
        found = self.db.execute(
            "SELECT DISTINCT endpoint FROM requests WHERE stage = ? AND status = 'pending'",
            (stage,),
        ).fetchall()
        return sorted(endpoint for (endpoint,) in found)

    def request(self, key: str) -> RequestRecord | None:
        found = self.db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE key = ?", (key,)
        ).fetchone()
        return _request(found) if found else None

    def requests_in(self, number: int, status: str = "filed") -> list[RequestRecord]:
        found = self.db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE file = ? AND status = ?",
            (number, status),
        ).fetchall()
        return [_request(row) for row in found]

    def request_counts(self, stage: int | None = None) -> dict[str, int]:
        where, args = ("WHERE stage = ?", (stage,)) if stage is not None else ("", ())
        found = self.db.execute(
            f"SELECT status, COUNT(*) FROM requests {where} GROUP BY status", args
        ).fetchall()
        return dict(found)

    def stage_figures(self, stage: int) -> tuple[dict[str, tuple[int, int]], int]:
        """Per endpoint and model: (requests, input tokens) of the stage; its rows."""
        found = self.db.execute(
            "SELECT endpoint, model, COUNT(*), SUM(tokens) FROM requests WHERE stage = ? "
            "GROUP BY endpoint, model",
            (stage,),
        ).fetchall()
        rows = self.db.execute(
            "SELECT COUNT(DISTINCT row) FROM requests WHERE stage = ?", (stage,)
        ).fetchone()[0]
        return {f"{e} {m}": (int(n), int(t or 0)) for e, m, n, t in found}, int(rows)

    # ------------------------------------------------------------------ files

    def files(self, *, unfinished_only: bool = False) -> list[FileRecord]:
        where = "WHERE step != 'joined'" if unfinished_only else ""
        found = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files {where} ORDER BY number"
        ).fetchall()
        return [_file(row) for row in found]

    def files_to_clean(self) -> list[FileRecord]:
        """Joined files whose remote files have not been deleted yet."""
        found = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE step = 'joined' AND cleaned = 0 "
            "ORDER BY number"
        ).fetchall()
        return [_file(row) for row in found]

    def file(self, number: int) -> FileRecord:
        found = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE number = ?", (number,)
        ).fetchone()
        return _file(found)

    def next_file_number(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM files").fetchone()[0])

    def update_file(self, number: int, db: sqlite3.Connection | None = None, **fields: Any) -> None:
        names = ", ".join(f"{name} = ?" for name in fields)
        values = [
            json.dumps(v) if name == "counts" and v is not None else v for name, v in fields.items()
        ]
        (db or self.db).execute(f"UPDATE files SET {names} WHERE number = ?", (*values, number))


_REQUEST_COLUMNS = "key, stage, row, endpoint, model, body, tokens, attempt, status, answer, error"
_FILE_COLUMNS = (
    "number, stage, endpoint, model, name, requests, tokens, bytes, step, trying, file_id, "
    "batch_id, status, counts, output_file_id, error_file_id, error, cleaned"
)


def _request(row: tuple[Any, ...]) -> RequestRecord:
    key, stage, index, endpoint, model, body, tokens, attempt, status, answer, error = row
    parsed = json.loads(answer) if answer else None
    return RequestRecord(
        key, stage, index, endpoint, model, body, tokens, attempt, status, parsed, error
    )


def _file(row: tuple[Any, ...]) -> FileRecord:
    values = list(row)
    values[13] = json.loads(values[13]) if values[13] else None
    values[17] = bool(values[17])
    return FileRecord(*values)


def _vector(blob: bytes | None) -> npt.NDArray[np.float32] | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)

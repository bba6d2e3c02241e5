"""Jobs and each item's result in SQLite, written as each item completes.

A job's embeddings are stored with it, so a server killed mid-job (even with SIGKILL)
resumes on restart from the items that have no result yet: no item is lost, and no
item's result is written twice (one row per job and index, inserted once).

A large upload is stored as it arrives, a chunk at a time, under the state
``uploading``; only a complete upload becomes ``queued``. One a crash cut short never
got its id to the client, so it is deleted when the store next opens.

A job's ``updated_at`` is the time of its last change, a new state or an item's result
(stored in the same transaction as the result): a running job's moves as results land.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from embed2prompt.batch.readers import Row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,            -- uploading, queued, running, completed, cancelling,
                                    -- cancelled, failed
    options TEXT NOT NULL,          -- the request's options as JSON
    total INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS job_inputs (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    vector BLOB NOT NULL,           -- float32 bytes
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS job_results (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    success INTEGER NOT NULL,
    result TEXT NOT NULL,           -- the item's result as JSON
    error TEXT,
    finished_at REAL NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS jobs_newest_first ON jobs (created_at DESC, id DESC);
"""

UNFINISHED = ("queued", "running")
CANCELLING = "cancelling"  # a batch job whose batches are still stopping at the API

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _locked(
    method: Callable[Concatenate[JobStore, _P], _T],
) -> Callable[Concatenate[JobStore, _P], _T]:
    """The method under the store's lock: one call at a time on the connection."""

    @wraps(method)
    def locked(self: JobStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(frozen=True, slots=True)
class JobStatus:
    id: str
    state: str
    total: int
    done: int
    succeeded: int
    failed: int
    created_at: float
    updated_at: float
    error: str | None
    options: dict[str, Any]
    recent_errors: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "progress": self.done / self.total if self.total else 1.0,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "error": self.error,
            "options": self.options,
            "recent_errors": self.recent_errors,
        }


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as a list shows it: no options beyond its mode, no item errors."""

    id: str
    state: str
    mode: str
    total: int
    done: int
    succeeded: int
    created_at: float
    updated_at: float
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "mode": self.mode,
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.done - self.succeeded,
            "progress": self.done / self.total if self.total else 1.0,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "error": self.error,
        }


class JobStore:
    """One SQLite database (WAL mode: readers never wait for the writer). ``clock``
    gives the times stored (seconds since the epoch; a fake one in tests).

    Safe to call from any thread (the service calls it from worker threads): one lock
    keeps each call, and so each transaction, whole on the one connection."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        path = Path(path)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process kills
        self._db.executescript(_SCHEMA)
        cut_short = self._db.execute("SELECT id FROM jobs WHERE state = 'uploading'").fetchall()
        for (job_id,) in cut_short:
            self.discard(job_id)

    @_locked
    def create(self, vectors: npt.NDArray[np.float32], options: dict[str, Any]) -> str:
        """A job of these vectors, queued."""
        job_id = self.begin_upload(options)
        self.append_inputs(job_id, 0, vectors)
        self.finish_upload(job_id, len(vectors))
        return job_id

    @_locked
    def begin_upload(self, options: dict[str, Any]) -> str:
        """A job whose inputs are still arriving (state ``uploading``); its id."""
        job_id = uuid.uuid4().hex
        now = self._clock()
        self._db.execute(
            "INSERT INTO jobs VALUES (?, 'uploading', ?, 0, ?, ?, NULL)",
            (job_id, json.dumps(options), now, now),
        )
        return job_id

    @_locked
    def append_inputs(
        self, job_id: str, first_index: int, vectors: npt.NDArray[np.float32]
    ) -> None:
        rows = (
            (job_id, first_index + offset, row.astype(np.float32).tobytes())
            for offset, row in enumerate(vectors)
        )
        with self._transaction():
            self._db.executemany("INSERT INTO job_inputs VALUES (?, ?, ?)", rows)

    @_locked
    def finish_upload(self, job_id: str, total: int) -> None:
        """The upload is complete: the job is queued."""
        self._db.execute(
            "UPDATE jobs SET state = 'queued', total = ?, updated_at = ? WHERE id = ?",
            (total, self._clock(), job_id),
        )

    @_locked
    def discard(self, job_id: str) -> None:
        """Delete a job and everything stored for it (an upload that failed)."""
        with self._transaction():
            self._db.execute("DELETE FROM job_inputs WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM job_results WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    @_locked
    def status(self, job_id: str, *, recent_errors: int = 5) -> JobStatus | None:
        job = self._db.execute(
            "SELECT state, total, created_at, updated_at, error, options FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if job is None:
            return None
        done, succeeded = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(success), 0) FROM job_results WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        errors = self._db.execute(
            "SELECT idx, error FROM job_results WHERE job_id = ? AND success = 0 "
            "ORDER BY finished_at DESC LIMIT ?",
            (job_id, recent_errors),
        ).fetchall()
        state, total, created, updated, error, options = job
        return JobStatus(
            job_id,
            state,
            total,
            done,
            succeeded,
            done - succeeded,
            created,
            updated,
            error,
            json.loads(options),
            [{"index": index, "error": message} for index, message in errors],
        )

    @_locked
    def newest(
        self, limit: int, *, before: str | None = None, state: str | None = None
    ) -> tuple[list[JobSummary], bool] | None:
        """Up to ``limit`` jobs, newest first (by creation, then id), after the job
        ``before`` in that order when given; whether more follow. None when ``before``
        names no job. A cursor rather than an offset: jobs created while a client pages
        through would shift an offset's pages."""
        where = ""
        args: tuple[Any, ...] = ()
        if before is not None:
            anchor = self._db.execute(
                "SELECT created_at FROM jobs WHERE id = ?", (before,)
            ).fetchone()
            if anchor is None:
                return None
            where, args = "WHERE (created_at, id) < (?, ?)", (anchor[0], before)
        if state is not None:
            where = f"{where} {'AND' if where else 'WHERE'} state = ?"
            args = (*args, state)
        jobs = self._db.execute(
            f"SELECT id, state, options, total, created_at, updated_at, error FROM jobs {where} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        more = len(jobs) > limit
        jobs = jobs[:limit]
        counts = dict.fromkeys((job[0] for job in jobs), (0, 0))
        if jobs:
            marks = ", ".join("?" * len(jobs))
            found = self._db.execute(
                "SELECT job_id, COUNT(*), COALESCE(SUM(success), 0) FROM job_results "
                f"WHERE job_id IN ({marks}) GROUP BY job_id",
                [job[0] for job in jobs],
            ).fetchall()
            counts.update({job_id: (done, succeeded) for job_id, done, succeeded in found})
        summaries = [
            JobSummary(
                job_id,
                job_state,
                str(json.loads(options).get("mode", "sync")),
                total,
                *counts[job_id],
                created,
                updated,
                error,
            )
            for job_id, job_state, options, total, created, updated, error in jobs
        ]
        return summaries, more

    @_locked
    def set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
            (state, error, self._clock(), job_id),
        )

    @_locked
    def unfinished(self) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE state IN (?, ?) ORDER BY created_at", UNFINISHED
        ).fetchall()
        return [job_id for (job_id,) in rows]

    @_locked
    def cancelling(self) -> list[str]:
        """The jobs cancelled while their batches were still stopping at the API."""
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE state = ? ORDER BY created_at", (CANCELLING,)
        ).fetchall()
        return [job_id for (job_id,) in rows]

    @_locked
    def pending(self, job_id: str, limit: int) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Up to ``limit`` items without a result, in index order, and their vectors."""
        rows = self._db.execute(
            "SELECT i.idx, i.vector FROM job_inputs i LEFT JOIN job_results r "
            "ON r.job_id = i.job_id AND r.idx = i.idx "
            "WHERE i.job_id = ? AND r.idx IS NULL ORDER BY i.idx LIMIT ?",
            (job_id, limit),
        ).fetchall()
        indices = [index for index, _ in rows]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return indices, np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])

    @_locked
    def save_result(self, job_id: str, index: int, result: dict[str, Any]) -> bool:
        """Store one item's result, and the job's ``updated_at``; False if the item had
        a result already (it is never replaced)."""
        original = result.get("original_result") or {}
        now = self._clock()
        with self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO job_results VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    index,
                    int(bool(original.get("success"))),
                    json.dumps(result),
                    original.get("error"),
                    now,
                ),
            )
            stored = cursor.rowcount == 1
            if stored:
                self._db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now, job_id))
        return stored

    @_locked
    def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT result FROM job_results WHERE job_id = ? ORDER BY idx LIMIT ? OFFSET ?",
            (job_id, limit, offset),
        ).fetchall()
        return [json.loads(result) for (result,) in rows]

    def batch_folder(self, job_id: str) -> Path:
        """Where a batch-mode job keeps its Batch API run (beside the database)."""
        return self.path.with_name(self.path.name + ".batch-api") / job_id

    @_locked
    def inputs_after(self, job_id: str, after: int, limit: int) -> list[Row]:
        """Up to ``limit`` inputs of a job whose index is above ``after``, in index order:
        a chunk of a read through all of them (a batch-mode job's run)."""
        found = self._db.execute(
            "SELECT idx, vector FROM job_inputs WHERE job_id = ? AND idx > ? ORDER BY idx LIMIT ?",
            (job_id, after, limit),
        ).fetchall()
        return [
            Row(index, str(index), np.frombuffer(blob, dtype=np.float32)) for index, blob in found
        ]

    @_locked
    def result_indices(self, job_id: str) -> set[int]:
        """The indices of the job's items that have a result."""
        rows = self._db.execute(
            "SELECT idx FROM job_results WHERE job_id = ?", (job_id,)
        ).fetchall()
        return {index for (index,) in rows}

    @_locked
    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

"""A run's Batch API input files, each taken one step at a time to its joined results.

An input file is written (:class:`FileWriter`: a stage's pending requests, cut at every
cap), then :meth:`FileSteps.advance` takes it ``written`` -> ``uploaded`` (Files API) ->
``submitted`` (a batch created when the model's queue has room) -> ``ended`` (the batch
completed, failed, expired or was cancelled) -> ``downloaded`` (its output and error
files) -> ``joined`` (each line back to its request by ``custom_id``; the requests it
did not answer sent again alone, up to ``batch_max_resubmits`` times). Once joined,
:meth:`FileSteps.clean` deletes its three files at the server (the upload, the output,
the errors: OpenAI charges for storage and limits the files an organisation holds),
unless ``batch_keep_files`` is set.

:meth:`FileSteps.cancel` stops a run at the server: every batch still in the queue is
cancelled (``batches.cancel``), uploads never submitted are withdrawn (deleted, their
requests pending again), and the cancelled batches are then taken to ``joined`` as any
other, so the requests they finished are kept and a later run sends only the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from embed2prompt.batch_api.remote import BatchService
from embed2prompt.batch_api.stages import EMBEDDINGS, chat_text, cosines_of, stage_name
from embed2prompt.batch_api.state import FileRecord, RequestRecord, RunState, parse_custom_id
from embed2prompt.errors import ApiError
from embed2prompt.pipeline.results import describe
from embed2prompt.settings import Settings

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS_PER_BATCH = 50_000  # OpenAI's, across all requests of a batch
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
ENDED = ("completed", "failed", "expired", "cancelled")
WITHDRAWN = "withdrawn: the run was cancelled before its batch was created"


def queue_tokens(settings: Settings) -> int:
    """Input tokens a model's batch queue may hold: the setting, else the tier's."""
    return settings.batch_queue_tokens or int(settings.rate_limits.tokens_per_day)


def poll_pauses(settings: Settings) -> Iterator[float]:
    """The pauses between polls of batches that have not moved: ``batch_poll_initial_s``,
    doubling up to ``batch_poll_max_s`` (a batch takes minutes to hours; asking every few
    seconds all day would only spend requests). A caller starts again once one moves."""
    pause = settings.batch_poll_initial_s
    while True:
        yield pause
        pause = min(pause * 2, settings.batch_poll_max_s)


class FileSteps:
    """The input files of the run whose state is ``state`` (in ``folder``)."""

    def __init__(
        self,
        state: RunState,
        folder: Path,
        settings: Settings,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.state = state
        self.folder = folder
        self.settings = settings
        self.queue_tokens = queue_tokens(settings)
        self._say = say
        self._service: BatchService | None = None

    async def aclose(self) -> None:
        if self._service is not None:
            await self._service.aclose()
            self._service = None

    def service(self) -> BatchService:
        if self._service is None:
            self._service = BatchService(self.settings)
        return self._service

    # ------------------------------------------------------------------ the steps

    def write(self, stage: int, endpoints: list[str]) -> None:
        """The stage's pending requests to ``endpoints`` into input files."""
        for endpoint in endpoints:
            writer = FileWriter(self, stage, endpoint)
            after = ""
            while page := self.state.pending(stage, endpoint, after, 1000):
                after = page[-1].key
                for request in page:
                    writer.add(request)
            writer.finish()

    async def advance(self, file: FileRecord) -> bool:
        """Take one file one step further; whether it moved."""
        service = self.service()
        state = self.state
        if file.step == "written":
            file_id = None
            if file.trying == "upload":  # an earlier upload may have reached the server
                file_id = await service.find_upload(file.name, file.bytes)
            if file_id is None:
                state.update_file(file.number, trying="upload")
                self._say(
                    f"uploading {file.name} ({file.requests:,} requests, {stage_name(file.stage)})"
                )
                file_id = await service.upload(self.input_path(file), file.name)
            state.update_file(file.number, step="uploaded", trying=None, file_id=file_id)
            self.input_path(file).unlink(missing_ok=True)
            return True
        if file.step == "uploaded":
            assert file.file_id is not None
            batch = await self._batch_created(file)
            if batch is None:
                enqueued = self._enqueued(file.model)
                if enqueued and enqueued + file.tokens > self.queue_tokens:
                    return False  # the model's queue is full: wait for a batch to end
                state.update_file(file.number, trying="submit")
                metadata = {"embed2prompt_run": str(state.get("run_id")), "file": file.name}
                batch = await service.create_batch(file.file_id, file.endpoint, metadata)
                self._say(f"submitted {file.name} as {batch.id}")
            state.update_file(
                file.number, step="submitted", trying=None, batch_id=batch.id, status=batch.status
            )
            return True
        if file.step == "submitted":
            assert file.batch_id is not None
            batch = await service.retrieve(file.batch_id)
            counts = batch.request_counts.model_dump() if batch.request_counts else None
            if batch.status not in ENDED:
                state.update_file(file.number, status=batch.status, counts=counts)
                return False
            errors = "; ".join(
                f"{e.code}: {e.message}" for e in (batch.errors.data or [] if batch.errors else [])
            )
            state.update_file(
                file.number,
                step="ended",
                status=batch.status,
                counts=counts,
                output_file_id=batch.output_file_id,
                error_file_id=batch.error_file_id,
                error=errors or None,
            )
            self._say(f"{file.name}: batch {batch.status}" + (f" ({errors})" if errors else ""))
            return True
        if file.step == "ended":
            for remote, local in self._results_of(file):
                await service.download(remote, local)
            state.update_file(file.number, step="downloaded")
            return True
        if file.step == "downloaded":
            self._join(file)
            return True
        return False

    async def _batch_created(self, file: FileRecord) -> Any:
        """The batch an earlier creation of ``file``'s may have made, or None."""
        if file.trying != "submit" or file.file_id is None:
            return None
        return await self.service().find_batch(file.file_id, float(self.state.get("started_at")))

    async def clean(self) -> int:
        """Delete the remote files of every joined file (its upload, its batch's output
        and error files), unless ``batch_keep_files``; how many files' remote files
        could not be deleted this time (tried again on the next call)."""
        if self.settings.batch_keep_files:
            return 0
        left = 0
        for file in self.state.files_to_clean():
            try:
                for file_id in file.remote_ids:
                    await self.service().delete(file_id)
            except ApiError as error:  # housekeeping: never stops the run
                self._say(f"{file.name}: could not delete its files at the API ({error})")
                left += 1
                continue
            self.state.update_file(file.number, cleaned=1)
        return left

    # ------------------------------------------------------------------ cancelling

    async def cancel(self) -> list[str]:
        """Cancel every batch of the run still in the server's queue, and withdraw the
        uploads not submitted yet; the ids of the batches cancelled. Recorded in the
        state (``cancelled_at``, each batch's status); :meth:`advance` then takes the
        cancelled batches to their joined results."""
        service = self.service()
        cancelled = []
        self.state.put("cancelled_at", time.time())
        for file in self.state.files(unfinished_only=True):
            if file.step == "written" and file.trying == "upload":
                file_id = await service.find_upload(file.name, file.bytes)
                if file_id is not None:  # uploaded before the answer was lost
                    self.state.update_file(
                        file.number, step="uploaded", trying=None, file_id=file_id
                    )
                    file = self.state.file(file.number)
            if file.step == "uploaded":
                batch = await self._batch_created(file)
                if batch is None:
                    await self._withdraw(file)
                    continue
                self.state.update_file(
                    file.number,
                    step="submitted",
                    trying=None,
                    batch_id=batch.id,
                    status=batch.status,
                )
                file = self.state.file(file.number)
            # A batch already cancelling (an earlier cancel) is only waited for.
            if file.step == "submitted" and file.status not in (*ENDED, "cancelling"):
                assert file.batch_id is not None
                batch = await service.cancel(file.batch_id)
                self.state.update_file(file.number, status=batch.status)
                if batch.status in ("cancelling", "cancelled"):  # not one that ended first
                    cancelled.append(batch.id)
                self._say(f"{file.name}: batch {batch.id} {batch.status}")
        return cancelled

    async def _withdraw(self, file: FileRecord) -> None:
        """An upload that never became a batch: deleted (unless kept), its requests
        pending again, not counted as failures."""
        if file.file_id is not None and not self.settings.batch_keep_files:
            await self.service().delete(file.file_id)
        self.input_path(file).unlink(missing_ok=True)
        with self.state.transaction() as db:
            db.execute(
                "UPDATE requests SET status = 'pending', file = NULL, attempt = attempt + 1 "
                "WHERE file = ? AND status = 'filed'",
                (file.number,),
            )
            self.state.update_file(
                file.number,
                db,
                step="joined",
                trying=None,
                error=WITHDRAWN,
                cleaned=int(not self.settings.batch_keep_files),
            )
        self._say(f"{file.name}: withdrawn before its batch was created")

    # ------------------------------------------------------------------ joining

    def _enqueued(self, model: str) -> int:
        """Input tokens of this run's batches for ``model`` still in the queue."""
        return sum(
            f.tokens
            for f in self.state.files(unfinished_only=True)
            if f.model == model and f.step == "submitted" and f.status in ACTIVE
        )

    def input_path(self, file: FileRecord) -> Path:
        return self.folder / f"input-{file.number:05d}.jsonl"

    def _results_of(self, file: FileRecord) -> list[tuple[str, Path]]:
        pairs = [
            (file.output_file_id, self.folder / f"output-{file.number:05d}.jsonl"),
            (file.error_file_id, self.folder / f"errors-{file.number:05d}.jsonl"),
        ]
        return [(remote, local) for remote, local in pairs if remote is not None]

    def _join(self, file: FileRecord) -> None:
        """Each output and error line back to its request; the rest of the file's
        requests (a batch failed, expired or cancelled) to be sent again."""
        chunk = self.settings.batch_join_chunk
        joined = 0
        for _, path in self._results_of(file):
            with path.open("rb") as handle:
                while lines := list(islice(handle, chunk)):
                    with self.state.transaction() as db:
                        for raw in lines:
                            self._join_line(db, file, raw)
                    joined += len(lines)
                    log.debug("joined %d of %d lines of %s", joined, file.requests, file.name)
        # Not the requests' fault: a full queue (someone else's batches) or a cancel.
        counts = not (
            file.status == "cancelled" or (file.error or "").startswith("token_limit_exceeded")
        )
        reason = f"its batch {file.status}" + (f" ({file.error})" if file.error else "")
        with self.state.transaction() as db:
            for request in self.state.requests_in(file.number):
                self._failed(db, request, reason, counts=counts)
            self.state.update_file(file.number, db, step="joined")
        for _, path in self._results_of(file):
            path.unlink(missing_ok=True)

    def _join_line(self, db: Any, file: FileRecord, raw: bytes) -> None:
        try:
            line = json.loads(raw)
            parsed = parse_custom_id(str(line["custom_id"]))
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            log.warning("%s: a result line that is not a batch result; skipped", file.name)
            return
        if parsed is None:
            return
        request = self.state.request(parsed[0])
        if request is None or request.status != "filed" or request.attempt != parsed[1]:
            return  # joined already (a resumed join), or an older attempt's
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            self._failed(db, request, _line_error(line))
            return
        try:
            answer = self._answer(request, response.get("body") or {})
        except Exception as error:  # a body we cannot read: the request failed
            self._failed(db, request, describe(error))
            return
        db.execute(
            "UPDATE requests SET status = 'done', answer = ?, error = NULL WHERE key = ?",
            (json.dumps(answer), request.key),
        )

    def _answer(self, request: RequestRecord, body: dict[str, Any]) -> dict[str, Any]:
        if request.endpoint == EMBEDDINGS:
            target = self.state.target(request.row)
            assert target is not None
            return {"cosines": cosines_of(body, target)}
        return {"text": chat_text(body)}

    def _failed(self, db: Any, request: RequestRecord, error: str, *, counts: bool = True) -> None:
        """Send the request again, alone, or (past the limit) record its error."""
        failures = int(
            db.execute("SELECT failures FROM requests WHERE key = ?", (request.key,)).fetchone()[0]
        ) + int(counts)
        if failures > self.settings.batch_max_resubmits:
            db.execute(
                "UPDATE requests SET status = 'failed', error = ?, failures = ? WHERE key = ?",
                (error, failures, request.key),
            )
            return
        db.execute(
            "UPDATE requests SET status = 'pending', file = NULL, attempt = attempt + 1, "
            "failures = ?, error = ? WHERE key = ?",
            (failures, error, request.key),
        )


class FileWriter:
    """Requests into numbered input files, a new file whenever one would break a cap."""

    def __init__(self, files: FileSteps, stage: int, endpoint: str) -> None:
        settings = files.settings
        self._state = files.state
        self._folder = files.folder
        self._stage = stage
        self._endpoint = endpoint
        self._max_requests = settings.batch_max_requests_per_file
        self._max_bytes = settings.batch_max_file_bytes
        self._max_tokens = files.queue_tokens
        self._handle: Any = None
        self._keys: list[str] = []
        self._bytes = self._tokens = self._inputs = 0
        self._model = ""

    def add(self, request: RequestRecord) -> None:
        line = (
            f'{{"custom_id":{json.dumps(request.custom_id)},"method":"POST",'
            f'"url":{json.dumps(self._endpoint)},"body":{request.body}}}\n'
        ).encode()
        inputs = len(json.loads(request.body)["input"]) if self._endpoint == EMBEDDINGS else 0
        if request.tokens > self._max_tokens or len(line) > self._max_bytes:
            with self._state.transaction() as db:
                db.execute(
                    "UPDATE requests SET status = 'failed', error = ? WHERE key = ?",
                    (
                        f"needs {request.tokens:,} input tokens and {len(line):,} bytes; a batch "
                        f"holds at most {self._max_tokens:,} tokens (batch_queue_tokens) and "
                        f"{self._max_bytes:,} bytes",
                        request.key,
                    ),
                )
            return
        if self._keys and (
            len(self._keys) + 1 > self._max_requests
            or self._bytes + len(line) > self._max_bytes
            or self._tokens + request.tokens > self._max_tokens
            or self._inputs + inputs > MAX_EMBEDDING_INPUTS_PER_BATCH
        ):
            self.finish()
        if self._handle is None:
            self._number = self._state.next_file_number()
            self._path = self._folder / f"input-{self._number:05d}.jsonl"
            self._temporary = self._path.with_name(self._path.name + ".tmp")
            self._handle = self._temporary.open("wb")
            self._model = request.model
        self._handle.write(line)
        self._keys.append(request.key)
        self._bytes += len(line)
        self._tokens += request.tokens
        self._inputs += inputs

    def finish(self) -> None:
        """Make the file so far whole on disk, then record it and its requests."""
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._temporary.replace(self._path)
        state = self._state
        name = f"embed2prompt-{state.get('run_id')}-{self._number:05d}.jsonl"
        with state.transaction() as db:
            db.execute(
                "INSERT INTO files (number, stage, endpoint, model, name, requests, tokens, "
                "bytes, step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'written')",
                (
                    self._number,
                    self._stage,
                    self._endpoint,
                    self._model,
                    name,
                    len(self._keys),
                    self._tokens,
                    self._bytes,
                ),
            )
            db.executemany(
                "UPDATE requests SET status = 'filed', file = ? WHERE key = ?",
                ((self._number, key) for key in self._keys),
            )
        self._handle = None
        self._keys = []
        self._bytes = self._tokens = self._inputs = 0


def _line_error(line: dict[str, Any]) -> str:
    """One line for a failed request of a batch: HTTP status and the API's message."""
    error = line.get("error")
    if error:
        return f"{error.get('code')}: {error.get('message')}"
    response = line.get("response") or {}
    body = response.get("body") or {}
    message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    return f"HTTP {response.get('status_code')}: {message or 'no message'}"

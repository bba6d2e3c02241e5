"""A Batch API run: rows inverted here, their evaluations through OpenAI's Batch API.

:class:`BatchApiRun` takes rows (:class:`~embed2prompt.batch.readers.Row`), inverts the
ones its state file does not hold yet (locally, as the synchronous pipeline does, a
chunk at a time), then runs the evaluation's stages
(:mod:`~embed2prompt.batch_api.stages`) one after the other. For each stage it:

1. plans each row's requests into the state file;
2. writes them into input files of ``{"custom_id", "method", "url", "body"}`` lines, cut
   at ``batch_max_requests_per_file`` (OpenAI: 50,000), ``batch_max_file_bytes``
   (200 MB), 50,000 embedding inputs and the batch-queue token limit;
3. uploads each file (Files API), creates its batch when the model's queue has room for
   its input tokens (``batch_queue_tokens``, by default the tier's), polls with a
   doubling pause, downloads the output and error files and joins their lines back to
   the requests by ``custom_id``; requests that failed, expired or were cancelled are
   put in new files alone, up to ``batch_max_resubmits`` times, then recorded as the
   row's error;
4. folds the answers into each row (the next stage's input).

Embeddings with the local embedder run in this process instead. When every stage is
done, each row's :class:`~embed2prompt.pipeline.results.PromptResult` goes to ``emit``.
Every step is committed to the state file before the next, so a run stopped in any way
(Ctrl-C, ``kill -9``, a reboot) resumes where it was, and never uploads a file or
creates a batch twice (:mod:`~embed2prompt.batch_api.remote`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.batch.readers import Row
from embed2prompt.batch.run import checked_vector
from embed2prompt.batch_api.pricing import StageCost, estimate_table
from embed2prompt.batch_api.remote import BatchService, TransientError
from embed2prompt.batch_api.stages import (
    CHAT,
    EMBEDDINGS,
    LOCAL_EMBEDDINGS,
    EvaluationPlan,
    chat_text,
    cosines_of,
    result_of,
    stage_name,
)
from embed2prompt.batch_api.state import FileRecord, RequestRecord, RunState, parse_custom_id
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.budget import PIPELINE_SEARCH, SearchBudget
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.pipeline.inversion_batching import InversionBatcher
from embed2prompt.pipeline.parallel import SHARED_BATCH
from embed2prompt.pipeline.results import PromptResult
from embed2prompt.pipeline.variants import describe
from embed2prompt.settings import Settings

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS_PER_BATCH = 50_000  # OpenAI's, across all requests of a batch
INVERT_CHUNK = 256  # rows inverted and stored per transaction
FOLD_CHUNK = 512  # rows folded per transaction
LOCAL_CHUNK = 256  # requests embedded locally per call
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
ENDED = ("completed", "failed", "expired", "cancelled")

Emit = Callable[[int, str, PromptResult], None]
Event = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Progress:
    """What the run has done: rows inverted, stages finished, files and batches."""

    rows: int
    inverted: int
    stage: int  # the stage in progress (0: inverting; stages + 1: done)
    stages: int


class BatchApiRun:
    """One run over ``rows`` with its state in ``folder`` (created if new)."""

    def __init__(
        self,
        rows: Callable[[], Iterable[Row]],
        rows_total: int,
        folder: Path,
        inverter: EmbeddingToPromptInference,
        settings: Settings,
        *,
        variants: int,
        emit: Emit,
        is_emitted: Callable[[int], bool],
        on_event: Event = lambda _: None,
    ) -> None:
        self._rows = rows
        self.rows_total = rows_total
        self.folder = folder
        self.inverter = inverter
        self.settings = settings
        self.plan = EvaluationPlan(settings, variants)
        self._emit = emit
        self._is_emitted = is_emitted
        self._say = on_event
        self.queue_tokens = settings.batch_queue_tokens or int(settings.rate_limits.tokens_per_day)
        self.state = RunState(folder / "state.sqlite3")
        self._service: BatchService | None = None
        self._check_options()

    # ------------------------------------------------------------------ the run

    async def run(self, stop: asyncio.Event) -> bool:
        """Run to the end; ``False`` if ``stop`` was set first (all kept for the next run)."""
        try:
            if not await self._invert_all(stop):
                return False
            for stage in range(1, self.plan.stages + 1):
                if self.state.rows_left(stage) == 0:
                    continue
                self._plan(stage)
                if stage == 1:
                    self._show_estimate()
                if not await self._execute(stage, stop):
                    return False
                self._fold(stage)
            self._emit_all()
            return True
        finally:
            if self._service is not None:
                await self._service.aclose()
                self._service = None

    def close(self) -> None:
        self.state.close()

    def _check_options(self) -> None:
        """A state file belongs to one input and one set of options: resuming it with
        others would mix two runs."""
        settings = self.settings
        options = {
            "rows": self.rows_total,
            "variants": self.plan.variants,
            "chat_model": self.plan.chat_model,
            "embeddings": f"{self.plan.embedding_endpoint} {self.plan.embedding_model}",
            "dimensions": self.plan.dimensions,
            "prompt_template": settings.prompt_template,
            "generation": [
                settings.generation_max_tokens,
                settings.generation_temperature,
                settings.generation_seed,
            ],
            # The search as resolved (the checkpoint's own under the settings'), so a
            # setting left unset and one set to the model's value count as the same run.
            "inversion": [str(self.inverter.model_path), repr(self._search_budget())],
        }
        stored = self.state.get("options")
        if stored is None:
            with self.state.transaction() as db:
                self.state.put("options", options, db)
                self.state.put("run_id", uuid.uuid4().hex[:12], db)
                self.state.put("started_at", time.time(), db)
            return
        changed = sorted(name for name in options if stored.get(name) != options[name])
        if changed:
            raise ConfigurationError(
                f"{self.state.path} holds a Batch API run with other {', '.join(changed)} "
                "than this one's; run it with the same options, or delete that folder (and "
                "the output) to start again"
            )

    # ------------------------------------------------------------------ inversion

    def _search_budget(self) -> SearchBudget:
        """The synchronous pipeline's search, the settings' choices on top."""
        return self.inverter.search_budget(self.settings.search_choices, purpose=PIPELINE_SEARCH)

    async def _invert_all(self, stop: asyncio.Event) -> bool:
        batcher = InversionBatcher(self.inverter, self._search_budget(), max_batch=SHARED_BATCH)
        done = self.state.rows_stored()
        if done < self.rows_total:
            self._say(f"inverting {self.rows_total - done:,} of {self.rows_total:,} rows locally")
        try:
            for chunk in _chunks(self._rows(), INVERT_CHUNK):
                if done >= self.rows_total:
                    break
                stored = self.state.stored_indices(chunk[0].index, chunk[-1].index)
                chunk = [row for row in chunk if row.index not in stored]
                if not chunk:
                    continue
                if stop.is_set():
                    return False
                self.state.add_rows(await self._inverted(chunk, batcher))
                done += len(chunk)
                log.debug("inverted %d of %d rows", done, self.rows_total)
        finally:
            await batcher.aclose()
        return True

    async def _inverted(
        self, chunk: list[Row], batcher: InversionBatcher
    ) -> list[tuple[int, str, npt.NDArray[np.float32] | None, dict[str, Any], bool]]:
        stored: list[tuple[int, str, npt.NDArray[np.float32] | None, dict[str, Any], bool]] = []
        valid: list[tuple[Row, npt.NDArray[np.float32]]] = []
        for row in chunk:
            try:
                valid.append((row, checked_vector(row, self.inverter)))
            except InputError as error:
                stored.append((row.index, row.id, None, {"error": str(error), "input": True}, True))
        inversions = await asyncio.gather(
            *(batcher.invert(vector) for _, vector in valid), return_exceptions=True
        )
        for (row, vector), inversion in zip(valid, inversions, strict=True):
            if isinstance(inversion, BaseException):
                state = {"error": describe(inversion)}
                stored.append((row.index, row.id, None, state, True))
                continue
            state = self.plan.first_state(inversion)
            stored.append((row.index, row.id, vector.astype(np.float32), state, False))
        return stored

    # ------------------------------------------------------------------ stages

    def _plan(self, stage: int) -> None:
        """Each row at the stage before: its requests (idempotent: keyed)."""
        after = -1
        while rows := self.state.rows_at(stage - 1, after, FOLD_CHUNK):
            after = rows[-1][0]
            planned = [(index, self.plan.requests(stage, state)) for index, state, _ in rows]
            with self.state.transaction() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, "
                    "'pending', NULL, NULL, 0)",
                    (
                        (
                            f"{stage}/{index}/{request.slot}",
                            stage,
                            index,
                            request.endpoint,
                            request.model,
                            json.dumps(request.body, ensure_ascii=False, separators=(",", ":")),
                            request.tokens,
                        )
                        for index, requests in planned
                        for request in requests
                    ),
                )

    def _fold(self, stage: int) -> None:
        after = -1
        while rows := self.state.rows_at(stage - 1, after, FOLD_CHUNK):
            after = rows[-1][0]
            updates = []
            for index, state, _ in rows:
                answers = self.state.requests_of(stage, index)
                by_slot = {key.rsplit("/", 1)[1]: record for key, record in answers.items()}
                reached, final = self.plan.fold(stage, state, by_slot)
                updates.append((json.dumps(state), reached, int(final), index))
            with self.state.transaction() as db:
                db.executemany(
                    "UPDATE rows SET state = ?, stage = ?, final = ? WHERE idx = ?", updates
                )
        log.debug("stage %s folded", stage_name(stage))

    def _emit_all(self) -> None:
        after = -1
        while rows := self.state.all_rows(after, 1024):
            after = rows[-1][0]
            for index, identifier, state, _ in rows:
                if not self._is_emitted(index):
                    self._emit(index, identifier, result_of(index, state))

    def _show_estimate(self) -> None:
        """Requests, tokens and prices of every stage, before anything is submitted."""
        if self.state.get("estimate_shown"):
            return
        costs = self.estimate()
        self._say("the API stages (stage 1 exact, the rest at most):\n" + estimate_table(costs))
        self.state.put("estimate_shown", True)

    def estimate(self) -> list[StageCost]:
        """Stage 1 as planned; each later stage bounded by its requests' most tokens
        (a generation is at most ``generation_max_tokens``)."""
        figures, rows = self.state.stage_figures(1)
        model = self.plan.chat_model
        requests, tokens = figures.get(f"{CHAT} {model}", (0, 0))
        most = self.plan.max_tokens
        costs = [StageCost("generate", model, requests, tokens, requests * most, True)]
        embedder = self.plan.embedding_model
        if self.plan.embedding_endpoint == EMBEDDINGS:
            costs.append(StageCost("embed", embedder, rows, requests * most, 0, False))
        rewrites = int(
            self.state.db.execute(
                "SELECT COALESCE(SUM(json_extract(state, '$.rewrites')), 0) FROM rows "
                "WHERE final = 0"
            ).fetchone()[0]
        )
        if rewrites:
            # A rewrite's prompt: the template around a prompt or a rewrite (at most a
            # generation's length); the evaluation's, the template around the rewrite.
            template = tokens / requests if requests else 0
            asked = int(rewrites * (template + most))
            costs.append(StageCost("rewrite", model, rewrites, asked, rewrites * most, False))
            costs.append(
                StageCost("rewrite-evaluate", model, rewrites, asked, rewrites * most, False)
            )
            if self.plan.embedding_endpoint == EMBEDDINGS:
                embedded = rewrites * 2 * most
                costs.append(StageCost("rewrite-embed", embedder, rewrites, embedded, 0, False))
        return costs

    # ------------------------------------------------------------------ executing

    async def _execute(self, stage: int, stop: asyncio.Event) -> bool:
        """Every request of the stage answered or failed for good; False on a stop."""
        await self._run_locally(stage, stop)
        pause = self.settings.batch_poll_initial_s
        while True:
            self._write_files(stage)
            files = [f for f in self.state.files(unfinished_only=True) if f.stage == stage]
            if not files:
                return not stop.is_set()
            moved = False
            for file in files:
                if stop.is_set():
                    return False
                try:
                    moved |= await self._advance(file)
                except TransientError as error:
                    self._say(f"file {file.name}: {error}; trying again shortly")
            if moved:
                pause = self.settings.batch_poll_initial_s
                continue
            if await _wait(stop, pause):
                return False
            pause = min(pause * 2, self.settings.batch_poll_max_s)

    async def _run_locally(self, stage: int, stop: asyncio.Event) -> None:
        """The stage's local embeddings, a chunk of requests at a time."""
        embedder = self.inverter.embedder
        while not stop.is_set():
            pending = self.state.pending(stage, LOCAL_EMBEDDINGS, "", LOCAL_CHUNK)
            if not pending:
                return
            texts = [json.loads(r.body)["input"] for r in pending]
            flat = [text for group in texts for text in group]
            updates: list[tuple[Any, ...]] = []
            try:
                vectors = await embedder.embed(flat)
            except Exception as error:  # the chunk's rows fail; the run goes on
                message = describe(error)
                updates = [("failed", None, message, r.key) for r in pending]
            else:
                position = 0
                for request, group in zip(pending, texts, strict=True):
                    target = self.state.target(request.row)
                    assert target is not None
                    cosines = vectors[position : position + len(group)] @ target
                    position += len(group)
                    answer = json.dumps({"cosines": [float(c) for c in cosines]})
                    updates.append(("done", answer, None, request.key))
            with self.state.transaction() as db:
                db.executemany(
                    "UPDATE requests SET status = ?, answer = ?, error = ? WHERE key = ?", updates
                )

    def _write_files(self, stage: int) -> None:
        """The stage's pending requests into input files, each within every cap."""
        for endpoint in self.state.pending_endpoints(stage):
            if endpoint == LOCAL_EMBEDDINGS:
                continue
            writer = _FileWriter(self, stage, endpoint)
            after = ""
            while page := self.state.pending(stage, endpoint, after, 1000):
                after = page[-1].key
                for request in page:
                    writer.add(request)
            writer.finish()

    def _service_now(self) -> BatchService:
        if self._service is None:
            self._service = BatchService(self.settings)
        return self._service

    async def _advance(self, file: FileRecord) -> bool:
        """Take one file one step further; whether it moved."""
        service = self._service_now()
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
                file_id = await service.upload(self._input_path(file), file.name)
            state.update_file(file.number, step="uploaded", trying=None, file_id=file_id)
            self._input_path(file).unlink(missing_ok=True)
            return True
        if file.step == "uploaded":
            assert file.file_id is not None
            batch = None
            if file.trying == "submit":  # an earlier creation may have reached the server
                batch = await service.find_batch(file.file_id, float(state.get("started_at")))
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

    def _enqueued(self, model: str) -> int:
        """Input tokens of this run's batches for ``model`` still in the queue."""
        return sum(
            f.tokens
            for f in self.state.files(unfinished_only=True)
            if f.model == model and f.step == "submitted" and f.status in ACTIVE
        )

    def _input_path(self, file: FileRecord) -> Path:
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

    # ------------------------------------------------------------------ status

    def progress(self) -> Progress:
        stage = next(
            (s for s in range(1, self.plan.stages + 1) if self.state.rows_left(s)),
            self.plan.stages + 1,
        )
        inverted = self.state.rows_stored()
        return Progress(
            self.rows_total, inverted, stage if inverted >= self.rows_total else 0, self.plan.stages
        )


class _FileWriter:
    """Requests into numbered input files, a new file whenever one would break a cap."""

    def __init__(self, run: BatchApiRun, stage: int, endpoint: str) -> None:
        settings = run.settings
        self._run = run
        self._stage = stage
        self._endpoint = endpoint
        self._max_requests = settings.batch_max_requests_per_file
        self._max_bytes = settings.batch_max_file_bytes
        self._max_tokens = run.queue_tokens
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
            with self._run.state.transaction() as db:
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
            self._number = self._run.state.next_file_number()
            self._path = self._run.folder / f"input-{self._number:05d}.jsonl"
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
        state = self._run.state
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


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; whether it was set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk

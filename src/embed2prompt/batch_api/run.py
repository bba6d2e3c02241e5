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

Steps 2 and 3 are :mod:`~embed2prompt.batch_api.files`'s; once a stage's files are
joined, their remote files are deleted (unless ``batch_keep_files``). Embeddings with
the local embedder run in this process instead. When every stage is done, each row's
:class:`~embed2prompt.pipeline.results.PromptResult` goes to ``emit``. Every step is
committed to the state file before the next, so a run stopped in any way (Ctrl-C,
``kill -9``, a reboot) resumes where it was, and never uploads a file or creates a
batch twice (:mod:`~embed2prompt.batch_api.remote`).
"""

from __future__ import annotations

import asyncio
import json
import logging
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
from embed2prompt.batch_api.files import FileSteps, poll_pauses
from embed2prompt.batch_api.pricing import StageCost, estimate_table
from embed2prompt.batch_api.stages import (
    CHAT,
    EMBEDDINGS,
    LOCAL_EMBEDDINGS,
    EvaluationPlan,
    result_of,
    stage_name,
)
from embed2prompt.batch_api.state import RunState
from embed2prompt.errors import ConfigurationError, InputError, TransientError
from embed2prompt.inversion.budget import SearchBudget
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.pipeline.inversion_batching import InversionBatcher
from embed2prompt.pipeline.parallel import SHARED_BATCH, pipeline_search
from embed2prompt.pipeline.results import PromptResult, describe
from embed2prompt.settings import Settings

log = logging.getLogger(__name__)

INVERT_CHUNK = 256  # rows inverted and stored per transaction
FOLD_CHUNK = 512  # rows folded per transaction
LOCAL_CHUNK = 256  # requests embedded locally per call

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
        self.state = RunState(folder / "state.sqlite3")
        self.files = FileSteps(self.state, folder, settings, on_event)
        self._check_options()

    # ------------------------------------------------------------------ the run

    async def run(self, stop: asyncio.Event) -> bool:
        """Run to the end; ``False`` if ``stop`` was set first (all kept for the next run)."""
        self.state.forget("cancelled_at")  # run again after a cancel: not cancelled now
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
                await self.files.clean()
            self._emit_all()
            if left := await self.files.clean():  # those an earlier pass could not delete
                self._say(
                    f"the files of {left} batches could not be deleted at the API; the next "
                    "run of this command tries again"
                )
            return True
        finally:
            await self.files.aclose()

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
        return pipeline_search(self.inverter, self.settings)

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
        pauses = poll_pauses(self.settings)
        while True:
            self.files.write(
                stage, [e for e in self.state.pending_endpoints(stage) if e != LOCAL_EMBEDDINGS]
            )
            files = [f for f in self.state.files(unfinished_only=True) if f.stage == stage]
            if not files:
                return not stop.is_set()
            moved = False
            for file in files:
                if stop.is_set():
                    return False
                try:
                    moved |= await self.files.advance(file)
                except TransientError as error:
                    self._say(f"file {file.name}: {error}; trying again shortly")
            if moved:
                pauses = poll_pauses(self.settings)
                continue
            if await _wait(stop, next(pauses)):
                return False

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

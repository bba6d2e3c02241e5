"""The Files and Batches endpoints of the local OpenAI-compatible server.

OpenAI's protocol, as its Batch API guide and the official SDK's types describe it:

- ``POST /v1/files`` (multipart ``file`` and ``purpose``), ``GET /v1/files`` (cursor pages:
  ``after``, ``limit``, ``order``, ``purpose``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``;
- ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window`` "24h",
  ``metadata``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``,
  ``GET /v1/batches`` (cursor pages, newest first).

A batch goes ``validating`` (its lines checked: JSON objects with ``custom_id``, method
``POST``, ``url`` equal to the batch's endpoint and a ``body``; unique ids; at most
50,000 requests and 50,000 embedding inputs; within the model's batch-queue token limit)
then ``in_progress``, ``finalizing`` and ``completed`` over ``batch_delay_s``; or
``failed`` (``errors``), ``expired`` or ``cancelled``. Each request is answered as the
synchronous endpoint would answer it; successes go to the output file, failures to the
error file, each line ``{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}``; requests an expired batch never ran are in the error file with the
code ``batch_expired``; a batch cancelled while in progress runs its first half (in its
output and error files), one cancelled before, none. Files live on disk, so a
large run's files do not fill the server's memory.

Every endpoint checks the server's ``api_key`` (when set) as the others do: 401
``invalid_api_key``. Injected faults (:class:`ServerConfig`): ``batch_error_rate`` and
``batch_error_match`` (requests answered 500), ``batch_expire_next`` (the next N
batches expire after running half their requests), ``batch_fail_next`` (the next N
fail in validation), ``batch_queue_tokens`` (the enqueued-token limit per model),
``batch_cancel_delay_s`` (how long a cancelled batch stays ``cancelling``),
``file_upload_delay_s`` and ``file_content_delay_s`` (an upload answered, a download
started, that much later: the window in which a client killed mid-call must not
repeat the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from embed2prompt.openai_api.tokens import count_tokens, estimate_chat_tokens
from embed2prompt.testing.query_auth import lacks_query, query_refusal

if TYPE_CHECKING:
    from embed2prompt.testing.openai_server import Answer, ServerConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_REQUESTS = 50_000
MAX_EMBEDDING_INPUTS = 50_000
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


class BatchEndpoints:
    """Files, batches and their counters; ``answer_for`` answers one request body."""

    def __init__(
        self,
        config: Callable[[], ServerConfig],
        answer_for: Callable[[str, dict[str, Any]], Answer],
        error: Callable[..., web.Response],
    ) -> None:
        self._config = config
        self._answer_for = answer_for
        self._error = error
        self._folder = tempfile.TemporaryDirectory(prefix="embed2prompt-files-")
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._cancel_asked: dict[str, asyncio.Event] = {}
        self._input_tokens: dict[str, tuple[str, int]] = {}  # batch id: (model, tokens)
        # Batches are validated one at a time, in the order they were created, as OpenAI
        # queues them: otherwise a later, smaller file parsed first could take the queue.
        self._validating = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconfigured = asyncio.Event()
        self.reset()

    def install(self, app: web.Application) -> None:
        routes = [
            ("POST", "/v1/files", self._upload),
            ("GET", "/v1/files", self._list_files),
            ("GET", "/v1/files/{id}", self._file),
            ("GET", "/v1/files/{id}/content", self._content),
            ("DELETE", "/v1/files/{id}", self._delete_file),
            ("POST", "/v1/batches", self._create),
            ("GET", "/v1/batches", self._list_batches),
            ("GET", "/v1/batches/{id}", self._batch),
            ("POST", "/v1/batches/{id}/cancel", self._cancel),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._authorised(handler))

    def _authorised(self, handler: Handler) -> Handler:
        """``handler`` behind the server's API key, as every OpenAI endpoint is."""

        async def checked(request: web.Request) -> web.StreamResponse:
            if lacks_query(request, self._config().required_query):
                return query_refusal()
            key = self._config().api_key
            if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
                return self._error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            return await handler(request)

        return checked

    def reset(self) -> None:
        """Forget every file and batch; counters to zero; the injected faults re-armed."""
        for task in self._tasks:
            task.cancel()
        self._tasks = set()
        for path in Path(self._folder.name).iterdir():
            path.unlink()
        self._files.clear()
        self._batches.clear()
        self._cancel_asked.clear()
        self._input_tokens.clear()
        self.rearm()
        self._uploads: Counter[str] = Counter()  # filename: uploads
        self._submitted: Counter[str] = Counter()  # custom_id: times in a batch that ran
        self._downloads = 0
        self._deleted = 0
        self._cancelled = 0
        self._batches_created = 0
        self._requests = 0
        self._peak_enqueued: dict[str, int] = {}

    def rearm(self) -> None:
        """Take the injected faults from the current configuration."""
        config = self._config()
        # Wakes the batches held cancelling, to read the configuration again.
        self._reconfigured.set()
        self._reconfigured = asyncio.Event()
        self._rng = random.Random(config.seed)
        self._expire_left = config.batch_expire_next
        self._fail_left = config.batch_fail_next

    def stats(self) -> dict[str, Any]:
        """The counters tests read: files uploaded (and any name uploaded twice), files
        deleted and those still held (by purpose), batches (by endpoint), batches asked
        to cancel while they ran, requests run, any ``custom_id`` run twice, downloads
        started, and the most input tokens ever enqueued at once per model."""
        return {
            "files_uploaded": sum(self._uploads.values()),
            "filenames_uploaded_twice": sorted(n for n, c in self._uploads.items() if c > 1),
            "files_deleted": self._deleted,
            "files_held": dict(Counter(file["purpose"] for file in self._files.values())),
            "batches_created": self._batches_created,
            "batches_by_endpoint": dict(Counter(b["endpoint"] for b in self._batches.values())),
            "batches_cancelled": self._cancelled,
            "requests_submitted": self._requests,
            "distinct_custom_ids": len(self._submitted),
            "custom_ids_submitted_twice": sorted(i for i, c in self._submitted.items() if c > 1),
            "downloads_started": self._downloads,
            "peak_enqueued_tokens": dict(self._peak_enqueued),
            "statuses": dict(Counter(batch["status"] for batch in self._batches.values())),
        }

    # ------------------------------------------------------------------ files

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        path = Path(self._folder.name) / file_id
        purpose, filename, size = None, None, 0
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError):
            return self._error(
                400, "expected a multipart/form-data body", "invalid_request_error", None
            )
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or "upload.jsonl"
                with path.open("wb") as handle:
                    while chunk := await part.read_chunk(1 << 20):
                        handle.write(chunk)
                        size += len(chunk)
        if filename is None or purpose is None:
            path.unlink(missing_ok=True)
            return self._error(
                400, "'file' and 'purpose' are required", "invalid_request_error", None
            )
        if purpose not in ("batch", "fine-tune", "assistants", "user_data", "vision"):
            path.unlink(missing_ok=True)
            return self._error(
                400, f"Invalid purpose {purpose!r}", "invalid_request_error", None, param="purpose"
            )
        self._files[file_id] = self._file_object(file_id, filename, purpose, size)
        self._uploads[filename] += 1
        delay = self._config().file_upload_delay_s
        if delay:
            await asyncio.sleep(delay)  # stored, but the client has not heard yet
        return web.json_response(self._files[file_id])

    def _file_object(self, file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }

    async def _list_files(self, request: web.Request) -> web.StreamResponse:
        purpose = request.query.get("purpose")
        files = [f for f in self._files.values() if purpose is None or f["purpose"] == purpose]
        return _page(files, request, default_limit=10_000)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file = self._files.get(request.match_info["id"])
        if file is None:
            return self._no_such("file", request.match_info["id"])
        return web.json_response(file)

    async def _content(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["id"]
        if file_id not in self._files:
            return self._no_such("file", file_id)
        self._downloads += 1
        delay = self._config().file_content_delay_s
        if delay:
            await asyncio.sleep(delay)
        return web.FileResponse(Path(self._folder.name) / file_id)

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["id"]
        if self._files.pop(file_id, None) is None:
            return self._no_such("file", file_id)
        self._deleted += 1
        (Path(self._folder.name) / file_id).unlink(missing_ok=True)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    # ------------------------------------------------------------------ batches

    async def _create(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if body.get("completion_window") != "24h":
            return self._error(
                400,
                "completion_window must be '24h'",
                "invalid_request_error",
                None,
                param="completion_window",
            )
        if endpoint not in ("/v1/chat/completions", "/v1/embeddings"):
            return self._error(
                400,
                f"Unsupported endpoint {endpoint!r}",
                "invalid_request_error",
                None,
                param="endpoint",
            )
        file = self._files.get(str(file_id))
        if file is None:
            return self._no_such("file", str(file_id))
        if file["purpose"] != "batch":
            return self._error(
                400,
                f"File {file_id} has purpose {file['purpose']!r}, not 'batch'",
                "invalid_request_error",
                None,
            )
        now = int(time.time())
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        batch = {
            "id": batch_id, "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + 86_400, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }  # fmt: skip
        self._batches[batch_id] = batch
        self._cancel_asked[batch_id] = asyncio.Event()
        self._batches_created += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch)

    async def _list_batches(self, request: web.Request) -> web.StreamResponse:
        newest_first = sorted(self._batches.values(), key=lambda b: b["created_at"], reverse=True)
        return _page(newest_first, request, default_limit=20, ordered=True)

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        batch = self._batches.get(request.match_info["id"])
        if batch is None:
            return self._no_such("batch", request.match_info["id"])
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        batch = self._batches.get(request.match_info["id"])
        if batch is None:
            return self._no_such("batch", request.match_info["id"])
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
            self._cancel_asked[batch["id"]].set()
            self._cancelled += 1
        return web.json_response(batch)

    def _no_such(self, kind: str, identifier: str) -> web.Response:
        return self._error(404, f"No such {kind}: {identifier!r}", "invalid_request_error", None)

    # ------------------------------------------------------------------ running

    async def _run(self, batch: dict[str, Any]) -> None:
        delay = self._config().batch_delay_s
        await asyncio.sleep(delay * 0.1)
        path = Path(self._folder.name) / batch["input_file_id"]
        async with self._validating:
            lines, problem = await asyncio.to_thread(_parse, path, batch["endpoint"])
            if problem is None and self._fail_left > 0:
                self._fail_left -= 1
                problem = {
                    "code": "injected_failure",
                    "message": "The batch failed (injected by the test server).",
                    "line": None,
                }
            if problem is None:
                problem = self._enqueue(batch, lines)
        if problem is not None:
            batch["errors"] = {"object": "list", "data": [{"param": None, **problem}]}
            batch["status"], batch["failed_at"] = "failed", int(time.time())
            return
        if batch["status"] == "cancelling":
            await self._stopping()
            return self._finish(batch, "cancelled", [], [])
        batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
        batch["request_counts"]["total"] = len(lines)
        # In progress until the delay is over, or a cancel (as a cancel stops a batch at
        # OpenAI: not at once, but without running to the end).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cancel_asked[batch["id"]].wait(), delay * 0.8)
        expire = self._expire_left > 0
        if expire:
            self._expire_left -= 1
        run = lines[: len(lines) // 2] if expire else lines
        if batch["status"] == "cancelling":  # stopped halfway: the first half ran
            run = lines[: len(lines) // 2]
        outputs, errors = await asyncio.to_thread(self._answer_all, run)
        if expire:
            errors += [_expired(line) for line in lines[len(run) :]]
        batch["request_counts"].update(completed=len(outputs), failed=len(errors))
        if batch["status"] == "cancelling":
            await self._stopping()
            return self._finish(batch, "cancelled", outputs, errors)
        batch["status"], batch["finalizing_at"] = "finalizing", int(time.time())
        await asyncio.sleep(delay * 0.1)
        self._finish(batch, "expired" if expire else "completed", outputs, errors)

    async def _stopping(self) -> None:
        """A cancelled batch stays ``cancelling`` ``batch_cancel_delay_s`` (the setting
        read again as it waits: a test holds a batch there, then lets it go)."""
        started = time.monotonic()
        while (left := started + self._config().batch_cancel_delay_s - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconfigured.wait(), left)

    def _enqueue(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Charge the batch's input tokens to its model's queue, or refuse it."""
        model = str(lines[0]["body"].get("model") or "") if lines else ""
        tokens = sum(_input_tokens(line["body"], batch["endpoint"]) for line in lines)
        enqueued = sum(
            charged
            for other, (name, charged) in self._input_tokens.items()
            if name == model and self._batches[other]["status"] in ACTIVE
        )
        limit = self._config().batch_queue_tokens
        if limit is not None and enqueued + tokens > limit:
            return {
                "code": "token_limit_exceeded",
                "message": f"Enqueued token limit reached for {model} in organization "
                f"org-test. Limit: {limit:,} enqueued tokens. Please try again once some "
                "in_progress batches have been completed.",
                "line": None,
            }
        self._input_tokens[batch["id"]] = (model, tokens)
        self._peak_enqueued[model] = max(self._peak_enqueued.get(model, 0), enqueued + tokens)
        return None

    def _answer_all(
        self, lines: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        config = self._config()
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for line in lines:
            self._submitted[line["custom_id"]] += 1
            self._requests += 1
            match = config.batch_error_match
            injected = self._rng.random() < config.batch_error_rate or (
                match is not None and match in json.dumps(line["body"])
            )
            if injected:
                body = {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                errors.append(_line(line, 500, body))
                continue
            answer = self._answer_for(line["url"], line["body"])
            (outputs if answer.status == 200 else errors).append(
                _line(line, answer.status, answer.body)
            )
        return outputs, errors

    def _finish(
        self,
        batch: dict[str, Any],
        status: str,
        outputs: list[dict[str, Any]],
        errors: list[dict[str, Any]],
    ) -> None:
        for kind, lines in (("output_file_id", outputs), ("error_file_id", errors)):
            if not lines:
                continue
            file_id = f"file-{uuid.uuid4().hex[:24]}"
            data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
            (Path(self._folder.name) / file_id).write_bytes(data)
            name = f"{batch['id']}_{'output' if kind == 'output_file_id' else 'error'}.jsonl"
            self._files[file_id] = self._file_object(file_id, name, "batch_output", len(data))
            batch[kind] = file_id
        stamp = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
        batch["status"], batch[stamp[status]] = status, int(time.time())


def _parse(path: Path, endpoint: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The file's requests, or the first problem that fails the batch."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    inputs = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return [], _invalid(number, "invalid_json", "The line is not valid JSON.")
            if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
                return [], _invalid(number, "invalid_request", "Each line needs a 'body' object.")
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                return [], _invalid(number, "missing_custom_id", "Each line needs a 'custom_id'.")
            if custom_id in seen:
                return [], _invalid(
                    number,
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} appears more than once.",
                )
            if line.get("method") != "POST":
                return [], _invalid(number, "invalid_method", "The method must be POST.")
            if line.get("url") != endpoint:
                return [], _invalid(
                    number,
                    "mismatched_url",
                    f"The url {line.get('url')!r} is not the batch's endpoint {endpoint!r}.",
                )
            seen.add(custom_id)
            lines.append(line)
            if endpoint == "/v1/embeddings":
                given = line["body"].get("input")
                inputs += len(given) if isinstance(given, list) else 1
    if not lines:
        return [], _invalid(None, "empty_file", "The input file has no requests.")
    if len(lines) > MAX_REQUESTS:
        return [], _invalid(
            None,
            "too_many_requests",
            f"The batch has {len(lines)} requests; at most {MAX_REQUESTS:,}.",
        )
    if inputs > MAX_EMBEDDING_INPUTS:
        return [], _invalid(
            None,
            "too_many_inputs",
            f"The batch has {inputs} embedding inputs; at most {MAX_EMBEDDING_INPUTS:,}.",
        )
    return lines, None


def _invalid(line: int | None, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "line": line}


def _input_tokens(body: dict[str, Any], endpoint: str) -> int:
    """The input tokens a request adds to its model's batch queue."""
    model = str(body.get("model") or "")
    if endpoint == "/v1/embeddings":
        given = body.get("input")
        texts = given if isinstance(given, list) else [given]
        return sum(count_tokens(str(text), model=model) for text in texts)
    messages = [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
        for m in body.get("messages") or []
        if isinstance(m, dict)
    ]
    return estimate_chat_tokens(messages, model=model, max_tokens=0)


def _line(request: dict[str, Any], status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": request["custom_id"],
        "response": {
            "status_code": status,
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
            "body": body,
        },
        "error": None,
    }


def _expired(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": request["custom_id"],
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }


def _page(
    items: list[dict[str, Any]], request: web.Request, *, default_limit: int, ordered: bool = False
) -> web.Response:
    """A cursor page as OpenAI lists them: ``after`` an id, at most ``limit``."""
    if not ordered:
        descending = request.query.get("order", "desc") == "desc"
        items = sorted(items, key=lambda item: item["created_at"], reverse=descending)
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = int(request.query.get("limit", default_limit))
    page = items[:limit]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )

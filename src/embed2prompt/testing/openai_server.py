"""A local OpenAI-compatible server for tests, benchmarks and the offline demo.

OpenAI itself cannot be reached from a test machine, so this speaks its protocol on
loopback: ``/v1/embeddings`` and ``/v1/chat/completions`` with real response bodies
(base64 or float embeddings, usage), ``x-ratelimit-*`` headers, its own RPM and TPM enforced
with OpenAI's 429 ``rate_limit_exceeded`` bodies and ``retry-after`` headers, and injected
faults: latency, 500s, 503s, 429s, hung requests and dropped connections. It records every
request's arrival, readable at ``GET /_stats``; ``POST /_config`` changes the behaviour of a
running server and ``POST /_reset`` clears its records and buckets. The Files and Batches
endpoints of the Batch API are :mod:`embed2prompt.testing.batch_endpoints`.

Run it as a process::

    python -m embed2prompt.testing --port 0 --rpm 600 --latency-ms 200

It prints one JSON line, ``{"url": "http://127.0.0.1:PORT/v1"}``, once it is listening.

Limits are token buckets, as OpenAI describes its own: the bucket holds
``limit * limit_window_s / 60`` and refills continuously at ``limit / 60`` per second. A
``limit_window_s`` below 60 models OpenAI's enforcement over sub-minute periods.
``sliding_window`` models many OpenAI-compatible servers and proxies instead: at most
``limit * limit_window_s / 60`` in any ``limit_window_s`` seconds, refused requests
counted too (OpenAI documents that unsuccessful requests count towards its limits), so a
client that keeps resending at too high a rate is refused for ever. With
``send_rate_limit_headers=False`` and ``limit_retry_after_s=1`` it answers as they do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from aiohttp import web

from embed2prompt.engine.headers import format_go_duration
from embed2prompt.openai_api.tokens import count_tokens, estimate_chat_tokens
from embed2prompt.testing.batch_endpoints import BatchEndpoints
from embed2prompt.testing.query_auth import lacks_query, query_refusal

_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSION = 1536
_MAX_EMBEDDING_INPUTS = 2048


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the server behaves. Rates are fractions of requests, in [0, 1]."""

    rpm: float | None = None
    tpm: float | None = None
    limit_window_s: float = 60.0
    sliding_window: bool = False  # a sliding window counting refused requests, not a bucket
    limit_retry_after_s: float | None = None  # the limit's fixed retry-after; else the wait
    send_rate_limit_headers: bool = True
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    rate_limit_429_rate: float = 0.0  # injected 429 rate_limit_exceeded, with retry-after
    injected_retry_after_ms: float = 200.0
    quota_exhausted: bool = False  # every request gets 429 insufficient_quota
    hang_rate: float = 0.0  # requests that never answer within hang_s (client timeouts)
    hang_s: float = 30.0
    drop_rate: float = 0.0  # connections closed without any response
    api_key: str | None = None  # when set, other keys get 401 invalid_api_key
    # Query parameters every request to /v1 must carry, as Azure-style deployments take
    # ``?api-key=...&api-version=...``: a request without them gets Azure's 401.
    required_query: dict[str, str] | None = None
    # The message of injected 500s and 503s in place of OpenAI's: a gateway's, which
    # may quote the URL it called, credentials and all.
    error_message: str | None = None
    seed: int = 0
    # The Batch API (batch_endpoints.py): seconds from a batch's creation to its end;
    # injected faults; the enqueued input tokens a model's queue holds (None: no limit).
    batch_delay_s: float = 0.0
    batch_error_rate: float = 0.0  # requests answered 500 in the error file
    batch_error_match: str | None = None  # requests whose body contains this: 500
    batch_expire_next: int = 0  # the next N batches expire with half their requests run
    batch_fail_next: int = 0  # the next N batches fail in validation
    batch_queue_tokens: int | None = None
    # Seconds a cancelled batch stays ``cancelling`` before it is ``cancelled`` (OpenAI
    # may take minutes); read again while it waits, so a test can hold a batch there.
    batch_cancel_delay_s: float = 0.0
    file_upload_delay_s: float = 0.0  # an upload is stored, then answered this much later
    file_content_delay_s: float = 0.0  # a download starts this much later


class _Bucket:
    """A token bucket holding at most ``capacity``, refilled at ``per_second``."""

    def __init__(self, limit_per_minute: float, window_s: float, now: float) -> None:
        self.limit = limit_per_minute
        self.capacity = limit_per_minute * window_s / 60.0
        self.per_second = limit_per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_second)
        self.updated = now

    def seconds_until(self, cost: float) -> float:
        return max(0.0, (cost - self.level) / self.per_second)

    def reset_seconds(self) -> float:
        return (self.capacity - self.level) / self.per_second

    def take(self, cost: float) -> None:
        self.level -= cost


class _SlidingWindow:
    """At most ``capacity`` in any ``window_s`` seconds, counting whatever is taken."""

    def __init__(self, limit_per_minute: float, window_s: float, now: float) -> None:
        self.limit = limit_per_minute
        self.capacity = limit_per_minute * window_s / 60.0
        self.window_s = window_s
        self.level = self.capacity
        self.updated = now
        self._taken: deque[tuple[float, float]] = deque()  # (time, cost), oldest first

    def refill(self, now: float) -> None:
        while self._taken and self._taken[0][0] <= now - self.window_s:
            self.level += self._taken.popleft()[1]
        self.updated = now

    def seconds_until(self, cost: float) -> float:
        """Seconds until ``cost`` fits, as the oldest entries leave the window."""
        need, level, wait = min(cost, self.capacity), self.level, 0.0
        for taken_at, taken in self._taken:
            if level >= need:
                break
            level += taken
            wait = taken_at + self.window_s - self.updated
        return max(0.0, wait)

    def reset_seconds(self) -> float:
        return self._taken[-1][0] + self.window_s - self.updated if self._taken else 0.0

    def take(self, cost: float) -> None:
        self._taken.append((self.updated, cost))
        self.level -= cost


class _Limits:
    """The server's own RPM and TPM check."""

    def __init__(self, config: ServerConfig) -> None:
        now = time.monotonic()
        window = config.limit_window_s
        kind = _SlidingWindow if config.sliding_window else _Bucket
        self.requests = None if config.rpm is None else kind(config.rpm, window, now)
        self.tokens = None if config.tpm is None else kind(config.tpm, window, now)
        self._count_refused = config.sliding_window

    def admit(self, tokens: int, now: float) -> tuple[str | None, float]:
        """Charge one request of ``tokens`` at ``now`` (``time.monotonic``); or say which
        limit it broke and for how long."""
        broken: tuple[str | None, float] = (None, 0.0)
        for name, bucket, cost in (("requests", self.requests, 1), ("tokens", self.tokens, tokens)):
            if bucket is None:
                continue
            bucket.refill(now)
            # A little slack for float rounding, not for pacing.
            if bucket.level + 1e-6 < min(cost, bucket.capacity):
                broken = (name, bucket.seconds_until(cost))
                break
        if broken[0] is None or self._count_refused:
            for bucket, cost in ((self.requests, 1), (self.tokens, tokens)):
                if bucket is not None:
                    bucket.take(cost)
        return broken

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is None:
                continue
            out[f"x-ratelimit-limit-{name}"] = str(int(bucket.limit))
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{name}"] = format_go_duration(bucket.reset_seconds())
        return out


class FakeOpenAIServer:
    """The aiohttp application and its state."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._limits = _Limits(config)
        self._rng = random.Random(config.seed)
        self._started = time.monotonic()
        self._arrivals: list[dict[str, Any]] = []
        self._outcomes: dict[str, int] = {}
        self._succeeded_inputs: dict[str, int] = {}
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/embeddings", self._endpoint)
        self.app.router.add_post("/v1/chat/completions", self._endpoint)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/_stats", self._stats)
        self.app.router.add_post("/_config", self._configure)
        self.app.router.add_post("/_reset", self._reset)
        self.batches = BatchEndpoints(lambda: self.config, answer, _error)
        self.batches.install(self.app)

    # ------------------------------------------------------------------ control

    async def _stats(self, request: web.Request) -> web.Response:
        include_arrivals = request.query.get("arrivals", "1") != "0"
        body: dict[str, Any] = {
            "requests": len(self._arrivals),
            "outcomes": self._outcomes,
            "succeeded_inputs": self._succeeded_inputs if include_arrivals else {},
            "config": asdict(self.config),
            "batch": self.batches.stats(),
        }
        if include_arrivals:
            body["arrivals"] = self._arrivals
        return web.json_response(body)

    async def _configure(self, request: web.Request) -> web.Response:
        changes = await request.json()
        known = {field.name for field in fields(ServerConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            return web.json_response({"error": f"unknown settings: {unknown}"}, status=400)
        self.config = replace(self.config, **changes)
        self._limits = _Limits(self.config)
        self._rng = random.Random(self.config.seed)
        self.batches.rearm()
        return web.json_response(asdict(self.config))

    async def _reset(self, _request: web.Request) -> web.Response:
        self._limits = _Limits(self.config)
        self._rng = random.Random(self.config.seed)
        self._arrivals.clear()
        self._outcomes.clear()
        self._succeeded_inputs.clear()
        self.batches.reset()
        self._started = time.monotonic()
        return web.json_response({"reset": True})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if lacks_query(request, self.config.required_query):
            return query_refusal()
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "embed2prompt"}
                    for name in ("text-embedding-3-small", "text-embedding-3-large", "gpt-4o-mini")
                ],
            }
        )

    # ------------------------------------------------------------------ API

    async def _endpoint(self, request: web.Request) -> web.StreamResponse:
        """``/v1/embeddings`` and ``/v1/chat/completions``: answered, then let through the
        limits (a refusal is a 429 as OpenAI writes it)."""
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        reply = answer(request.path, body)
        if reply.status != 200:
            return web.json_response(reply.body, status=reply.status)
        refusal = await self._gate(request, reply.tokens, label=reply.label)
        if refusal is not None:
            return refusal
        self._count_success(reply)
        return self._ok(reply.body)

    def _count_success(self, answer: Answer) -> None:
        for text in answer.inputs:
            self._succeeded_inputs[text] = self._succeeded_inputs.get(text, 0) + 1

    # ------------------------------------------------------------------ behaviour

    def _record(self, request: web.Request, outcome: str, tokens: int, label: str | None) -> None:
        self._arrivals.append(
            {
                "t": time.monotonic() - self._started,
                "path": request.path,
                "outcome": outcome,
                "tokens": tokens,
                "label": label,
            }
        )
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1

    async def _gate(
        self, request: web.Request, tokens: int, *, label: str | None
    ) -> web.StreamResponse | None:
        """Auth, limits and injected faults; ``None`` lets the request through."""
        config = self.config
        if config.api_key is not None:
            given = request.headers.get("Authorization", "")
            if given != f"Bearer {config.api_key}":
                self._record(request, "401", tokens, label)
                return _error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
        if lacks_query(request, self.config.required_query):
            self._record(request, "401", tokens, label)
            return query_refusal()
        if config.quota_exhausted:
            self._record(request, "429_quota", tokens, label)
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        broken, wait = self._limits.admit(tokens, time.monotonic())
        if broken is not None:
            self._record(request, "429_limit", tokens, label)
            limit = self._limits.requests if broken == "requests" else self._limits.tokens
            assert limit is not None
            unit = "RPM" if broken == "requests" else "TPM"
            message = (
                f"Rate limit reached for {model_name(request)} in organization org-test on "
                f"{broken} per min ({unit}): Limit {int(limit.limit)}, "
                f"Requested {1 if broken == 'requests' else tokens}. "
                f"Please try again in {format_go_duration(wait)}."
            )
            if config.limit_retry_after_s is not None:
                wait = config.limit_retry_after_s
            return _error(
                429,
                message,
                broken,
                "rate_limit_exceeded",
                headers=self._retry_after_headers(wait),
            )
        roll = self._rng.random()
        for outcome, rate in (
            ("drop", config.drop_rate),
            ("hang", config.hang_rate),
            ("500", config.error_500_rate),
            ("503", config.error_503_rate),
            ("429_injected", config.rate_limit_429_rate),
        ):
            if roll < rate:
                return await self._inject(request, outcome, tokens, label)
            roll -= rate
        self._record(request, "ok", tokens, label)
        await self._latency()
        return None

    async def _inject(
        self, request: web.Request, outcome: str, tokens: int, label: str | None
    ) -> web.StreamResponse:
        self._record(request, outcome, tokens, label)
        await self._latency()
        if outcome == "drop":
            if request.transport is not None:
                request.transport.abort()  # no status line, no body: a dropped connection
            raise asyncio.CancelledError  # aiohttp ends the handler quietly
        if outcome == "hang":
            await asyncio.sleep(self.config.hang_s)
            return _error(504, "upstream timed out", "server_error", None)
        if outcome == "500":
            message = "The server had an error while processing your request."
            return _error(500, self.config.error_message or message, "server_error", None)
        if outcome == "503":
            return _error(
                503,
                self.config.error_message
                or "The engine is currently overloaded, please try again later.",
                "server_error",
                "server_is_overloaded",
                headers=self._retry_after_headers(self.config.injected_retry_after_ms / 1000),
            )
        return _error(
            429,
            "Rate limit reached for requests. Please try again shortly.",
            "requests",
            "rate_limit_exceeded",
            headers=self._retry_after_headers(self.config.injected_retry_after_ms / 1000),
        )

    def _retry_after_headers(self, seconds: float) -> dict[str, str]:
        headers = {
            "retry-after": str(max(1, math.ceil(seconds))),
            "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
        }
        if self.config.send_rate_limit_headers:
            headers.update(self._limits.headers())
        return headers

    async def _latency(self) -> None:
        config = self.config
        delay = config.latency_ms
        if config.latency_jitter_ms:
            delay += self._rng.uniform(-config.latency_jitter_ms, config.latency_jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

    def _ok(self, body: dict[str, Any]) -> web.Response:
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}", "openai-processing-ms": "1"}
        if self.config.send_rate_limit_headers:
            headers.update(self._limits.headers())
        return web.json_response(body, headers=headers)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API answers one request body: the status and body, the tokens it is
    charged (limits), a label for the arrivals log, and the inputs it served."""

    status: int
    body: dict[str, Any]
    tokens: int = 0
    label: str | None = None
    inputs: tuple[str, ...] = ()


def embeddings_answer(body: dict[str, Any]) -> Answer:
    """The answer to an ``/v1/embeddings`` body (over HTTP or in a batch)."""
    texts = _embedding_inputs(body.get("input"))
    if isinstance(texts, str):
        return _error_answer(400, texts, "invalid_request_error", None, param="input")
    model = str(body.get("model") or "")
    if not model:
        return _error_answer(
            400, "you must provide a model parameter", "invalid_request_error", None
        )
    dimension = _EMBEDDING_DIMENSIONS.get(model, _DEFAULT_EMBEDDING_DIMENSION)
    if body.get("dimensions") is not None:
        if not model.startswith("text-embedding-3"):
            return _error_answer(
                400,
                "This model does not support specifying dimensions.",
                "invalid_request_error",
                None,
                param="dimensions",
            )
        dimension = int(body["dimensions"])
    tokens = sum(count_tokens(text, model=model) for text in texts)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embed_deterministically(text, dimension)
        encoded: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode()
            if as_base64
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    label = texts[0] if len(texts) == 1 else None
    return Answer(200, answer, tokens, label, tuple(texts))


def chat_answer(body: dict[str, Any]) -> Answer:
    """The answer to a ``/v1/chat/completions`` body (over HTTP or in a batch); its
    ``tokens`` are what OpenAI's limiter charges up front (prompt + ``max_tokens``)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error_answer(
            400, "messages must be a non-empty array", "invalid_request_error", None
        )
    model = str(body.get("model") or "")
    if not model:
        return _error_answer(
            400, "you must provide a model parameter", "invalid_request_error", None
        )
    max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
    contents = [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
        for m in messages
        if isinstance(m, dict)
    ]
    charged = estimate_chat_tokens(contents, model=model, max_tokens=max_tokens)
    prompt_tokens = charged - max_tokens
    last = contents[-1]["content"] if contents else ""
    text, finish = _reply_to(last, max_tokens=max_tokens, model=model, seed=body.get("seed"))
    completion_tokens = count_tokens(text, model=model)
    answer = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_embed2prompt",
    }
    return Answer(200, answer, charged, last, (last,))


def answer(url: str, body: dict[str, Any]) -> Answer:
    """The answer to a request of a batch: ``url`` is its endpoint."""
    if url == "/v1/embeddings":
        return embeddings_answer(body)
    return chat_answer(body)


def error_body(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _error_answer(
    status: int, message: str, error_type: str, code: str | None, *, param: str | None = None
) -> Answer:
    return Answer(status, error_body(message, error_type, code, param))


def model_name(request: web.Request) -> str:
    return "default" if request.path.endswith("embeddings") else "gpt-4o-mini"


def embed_deterministically(text: str, dimension: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A unit vector that depends only on the text: the same text, the same vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _reply_to(prompt: str, *, max_tokens: int, model: str, seed: object) -> tuple[str, str]:
    """A deterministic answer that stays on the prompt's words, cut at ``max_tokens``."""
    words = prompt.split() or ["nothing"]
    reply_words = ["Here", "is", "a", "response", "about", *words]
    text = " ".join(reply_words)
    if count_tokens(text, model=model) <= max_tokens:
        return text, "stop"
    while reply_words and count_tokens(" ".join(reply_words), model=model) > max_tokens:
        reply_words.pop()
    return " ".join(reply_words), "length"


def _embedding_inputs(raw: object) -> list[str] | str:
    """The inputs as texts, or an error message in OpenAI's words."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return "'$.input' is invalid. Please check the API reference."
    if len(raw) > _MAX_EMBEDDING_INPUTS:
        return f"'$.input' is too long: at most {_MAX_EMBEDDING_INPUTS} inputs per request."
    texts: list[str] = []
    for item in raw:
        if isinstance(item, str):
            if not item:
                return "'$.input' is invalid. Please check the API reference."
            texts.append(item)
        elif isinstance(item, int):
            texts.append(str(item))
        elif isinstance(item, list):
            texts.append(" ".join(str(token) for token in item))
        else:
            return "'$.input' is invalid. Please check the API reference."
    return texts


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ConnectionResetError:
        raise asyncio.CancelledError from None  # the client went away: end quietly
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(
            400, "We could not parse the JSON body of your request.", "invalid_request_error", None
        )
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.", "invalid_request_error", None)
    return body


def _error(
    status: int,
    message: str,
    error_type: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = error_body(message, error_type, code, param)
    return web.json_response(body, status=status, headers=headers)


def _parse_args(argv: list[str] | None) -> tuple[str, int, ServerConfig]:
    parser = argparse.ArgumentParser(
        prog="python -m embed2prompt.testing",
        description="A local OpenAI-compatible server with limits and fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    for field in fields(ServerConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif "str" in str(field.type):
            parser.add_argument(flag, default=None)
        elif "int" in str(field.type) and "float" not in str(field.type):
            parser.add_argument(flag, type=int, default=field.default)
        else:
            parser.add_argument(flag, type=float, default=field.default)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    return host, port, ServerConfig(**args)


async def _serve(host: str, port: int, config: ServerConfig) -> None:
    server = FakeOpenAIServer(config)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(json.dumps({"url": f"http://{host}:{bound_port}/v1"}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    host, port, config = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, config))

"""The body-size guard in process: per-path limits, chunked bodies counted, not buffered."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request

from embed2prompt.service.security import BodySizeLimit


def _app() -> BodySizeLimit:
    app = FastAPI()

    @app.post("/small")
    async def small(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    return BodySizeLimit(
        app,
        max_bytes=100,
        upload_paths=frozenset({"/upload"}),
        max_upload_bytes=10_000,
        drain_bytes=20_000,
    )


def _post(path: str, chunks: list[bytes], *, declared: int | None = None) -> tuple[int, bytes, int]:
    """(status, body, chunks the app left unread) for a POST sent in these chunks."""
    queue = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []
    headers = [(b"content-type", b"application/json")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()  # a real server would wait for a disconnect here
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(_app()(scope, receive, send), timeout=10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, len(queue)


def test_a_chunked_body_within_the_limit_reaches_the_app() -> None:
    status, body, unread = _post("/small", [b'{"a": 1,', b' "b": 2}'])
    assert (status, body, unread) == (200, b'{"keys":2}', 0)


def test_a_chunked_body_over_the_limit_is_drained_and_refused() -> None:
    status, body, unread = _post("/small", [b'{"a": "', b"x" * 200, b"x" * 200, b'"}'])
    assert status == 413
    assert b"larger than 100 bytes (max_request_bytes)" in body
    assert unread == 0  # read to the end, so that the client gets to read the 413


def test_an_upload_path_has_its_own_limit() -> None:
    status, body, _ = _post("/upload", [b"x" * 4000, b"x" * 4000])
    assert (status, body) == (200, b'{"size":8000}')
    status, body, unread = _post("/upload", [b"x" * 4000] * 4)
    assert status == 413
    assert b"larger than 10000 bytes (max_upload_bytes)" in body
    assert unread == 0


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    status, body, unread = _post("/small", [b"x" * 50, b"x" * 100], declared=150)
    assert status == 413
    assert b"max_request_bytes" in body
    assert unread == 0


def test_a_client_that_keeps_sending_is_answered_without_reading_it_all() -> None:
    status, body, unread = _post("/small", [b"x" * 5_000] * 100)  # 500 kB, drained to 20 kB
    assert status == 413
    assert b"max_request_bytes" in body
    assert unread > 80  # the rest is left: the server closes the connection

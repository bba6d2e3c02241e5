"""The service's guards: the API key, and a cap on request bodies.

The key is compared in constant time and never logged or echoed; ``/health`` stays open
so that load balancers can probe it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Header, HTTPException

from embed2prompt.settings import Settings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def api_key_guard(settings: Settings) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: with ``API_KEY`` set, the request must carry it as
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; 401 otherwise."""
    expected = settings.api_key.get_secret_value().encode() if settings.api_key else None

    async def check(
        authorization: str | None = Header(default=None),
        x_api_key: str | None = Header(default=None),
    ) -> None:
        if expected is None:
            return
        given = x_api_key
        if given is None and authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            given = credentials.strip() if scheme.lower() == "bearer" else None
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(
                status_code=401,
                detail="missing or invalid API key: send Authorization: Bearer KEY or X-API-Key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 before the app reads it.

    A declared Content-Length is checked up front; a body without one (chunked) is read
    up to the limit and replayed to the app. A refused body is read and dropped (memory
    stays flat) before the 413, since most clients read no response while still sending.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await _discard_body(receive)  # so the client can read the 413
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _discard_body(receive)
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes (max_request_bytes)"
        payload = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _discard_body(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return

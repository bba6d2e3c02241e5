"""The service's guards: the API key, and a cap on request bodies.

The key is compared in constant time and never logged or echoed; ``/health`` stays open
so that load balancers can probe it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Header, HTTPException

from embed2prompt.settings import Settings

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
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


DRAIN_BYTES = 64 * 1024 * 1024  # most of a refused body read (and dropped) before the 413


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit (after draining the rest).

    An HTTPException, so that FastAPI passes it through its body parsing and the app
    answers 413, whether the route parses JSON or reads the stream itself."""

    def __init__(self, max_bytes: int, setting: str) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body larger than {max_bytes} bytes ({setting})",
        )


class BodySizeLimit:
    """ASGI middleware: a body over its limit gets 413.

    The limit is ``max_bytes`` (setting ``max_request_bytes``) except on the paths in
    ``upload_paths``, which stream large uploads and have ``max_upload_bytes``. A
    declared Content-Length is checked before the app runs; a body without one
    (chunked) is counted as the app reads it, nothing buffered. A refused body is read
    and dropped (memory stays flat) before the 413, since most clients read no response
    while still sending.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        upload_paths: frozenset[str] = frozenset(),
        max_upload_bytes: int = 0,
        drain_bytes: int = DRAIN_BYTES,
    ) -> None:
        self.app = app
        self.drain_bytes = drain_bytes
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.upload_paths:
            limit, setting = self.max_upload_bytes, "max_upload_bytes"
        else:
            limit, setting = self.max_bytes, "max_request_bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _discard_body(receive, self.drain_bytes)  # so the client reads the 413
            await self._refuse(send, BodyTooLarge(limit, setting))
            return
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    if message.get("more_body", False):
                        await _discard_body(receive, self.drain_bytes)
                    raise BodyTooLarge(limit, setting)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send: Send, error: BodyTooLarge) -> None:
        payload = json.dumps({"detail": error.detail}).encode()
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


async def _discard_body(receive: Receive, max_bytes: int) -> None:
    """Read and drop the rest of a refused body, up to ``max_bytes``: beyond that the
    server answers anyway and closes the connection, so that a client that never stops
    sending cannot hold it."""
    dropped = 0
    while dropped <= max_bytes:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))

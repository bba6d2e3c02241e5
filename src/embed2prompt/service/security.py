"""The service's guards, below FastAPI: the API key, then a cap on request bodies.

Both answer in ASGI, before any route runs, so that a request without the key costs
nothing: its body is neither read nor parsed (the server drops what the client still
sends). The key is compared in constant time and never logged or echoed. The paths in
``open_paths`` (``/health`` and the API's documentation) need no key, so that load
balancers can probe and people can read what the API is.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from embed2prompt.service.errors import error_json

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNAUTHORISED = "missing or invalid API key: send Authorization: Bearer KEY or X-API-Key: KEY"


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: ``X-API-Key``, else a Bearer ``Authorization``."""
    found = dict(headers)
    if (key := found.get(b"x-api-key")) is not None:
        return key
    scheme, _, credentials = found.get(b"authorization", b"").partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else None


class ApiKeyGuard:
    """ASGI middleware: with a key set, every path but ``open_paths`` needs it; 401
    otherwise, sent before the body is read."""

    def __init__(self, app: ASGIApp, *, key: bytes | None, open_paths: frozenset[str]) -> None:
        self.app = app
        self._key = key
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key
        if scope["type"] != "http" or key is None or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = presented_key(scope.get("headers") or [])
        if given is not None and hmac.compare_digest(given, key):
            await self.app(scope, receive, send)
            return
        await _respond(send, 401, UNAUTHORISED, [(b"www-authenticate", b"Bearer")])


DRAIN_BYTES = 64 * 1024 * 1024  # most of a refused body read (and dropped) before the 413


class BodySizeLimit:
    """ASGI middleware: a body over its limit gets 413.

    The limit is ``max_bytes`` (setting ``max_request_bytes``) except on the paths in
    ``upload_paths``, which stream large uploads and have ``max_upload_bytes``. A
    declared Content-Length is checked before the app runs; a body without one
    (chunked) is counted as the app reads it, nothing buffered. A refused body is read
    and dropped (memory stays flat) before the 413, since most clients read no response
    while still sending.

    Past the limit the guard sends the 413 itself and tells the app the client has gone
    (``http.disconnect``), dropping whatever the app then answers: an exception raised
    from ``receive`` instead would have to cross every layer of the app unchanged, and
    one (a task group in a middleware) turned it into a 400.
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
        detail = f"request body larger than {limit} bytes ({setting})"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _discard_body(receive, self.drain_bytes)  # so the client reads the 413
            await _respond(send, 413, detail)
            return
        size = 0
        refused = started = answered = False

        async def counted() -> Message:
            nonlocal size, refused, answered
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    refused = True
                    if message.get("more_body", False):
                        await _discard_body(receive, self.drain_bytes)
                    if not started:  # else the app's own response goes on, cut short
                        await _respond(send, 413, detail)
                        answered = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out; the app's answer to the "disconnect" does not
            started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not answered:
                raise
            # The app's failure to read a body it was told had gone (a ClientDisconnect
            # from a route that streams): the client has its 413 already.


async def _respond(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = error_json(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
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

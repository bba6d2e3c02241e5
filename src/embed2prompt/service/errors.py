"""The service's one error shape, for every 4xx it answers.

Every error body is ``{"detail": "<one readable line>"}``; a request that fails
validation adds ``errors``, one ``{"loc", "msg", "type"}`` entry per problem. The
caller's input is never echoed: a value that failed may be ``NaN`` or ``Infinity``
(which JSON cannot carry, so echoing it was a 500) or megabytes long, and an unknown
field's name is cut short. At most ``MAX_ERRORS`` entries come back. Any other
exception (a bug, a broken invariant) is logged with its traceback and answered as a
500 in the same shape, naming only its class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from embed2prompt.errors import ConfigurationError, InputError

log = logging.getLogger(__name__)

MAX_ERRORS = 20  # entries in ``errors``; the rest are counted in ``detail``
MAX_TEXT = 120  # characters of a message or a location part, beyond which it is cut
_DETAIL_ERRORS = 3  # problems spelt out in the one-line ``detail``


class FieldError(BaseModel):
    """One problem with one part of the request."""

    loc: list[str | int] = Field(
        description='Where: "body", "query" or "path", then field names and list indices.'
    )
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="A stable code for the problem (pydantic's error type).")


class ErrorResponse(BaseModel):
    """The body of every 4xx (and 503) response."""

    detail: str = Field(description="What went wrong, in one line.")
    errors: list[FieldError] | None = Field(
        default=None, description="For invalid requests: each problem and where it is."
    )


def error_json(detail: str) -> bytes:
    """An error body for code that answers below FastAPI (the ASGI guards)."""
    return json.dumps({"detail": detail}).encode()


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """pydantic's errors without their ``input`` and ``ctx`` (values from the caller)."""
    errors = []
    for error in raw[:MAX_ERRORS]:
        message = str(error.get("msg", "invalid"))
        context = error.get("ctx") or {}
        if error.get("type") == "json_invalid" and isinstance(context.get("error"), str):
            message = f"{message}: {context['error']}"  # the parser's words, not the input
        location = [part if isinstance(part, int) else _cut(str(part)) for part in error["loc"]]
        errors.append(FieldError(loc=location, msg=_cut(message), type=str(error.get("type"))))
    return errors


def validation_detail(errors: list[FieldError], total: int) -> str:
    parts = [
        f"{'.'.join(str(part) for part in error.loc)}: {error.msg}"
        for error in errors[:_DETAIL_ERRORS]
    ]
    more = total - len(parts)
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more else "")


def install_error_handlers(app: FastAPI) -> None:
    """Answer invalid requests, bad input and a misconfigured server in the one shape."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        raw = error.errors()
        errors = field_errors(raw)
        detail = _not_json(request, errors) or validation_detail(errors, len(raw))
        body = ErrorResponse(detail=detail, errors=errors)
        return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only;
            # a path served by several routes (GET and DELETE /jobs/{id}) has them all.
            headers = {**(error.headers or {}), "Allow": ", ".join(_allowed(request))}
            error = HTTPException(405, detail=error.detail, headers=headers)
        elif error.status_code == 400 and error.__cause__ is not None:
            # FastAPI's one message for every JSON body it could not parse: say why.
            error = HTTPException(400, detail=_unreadable_body(error.__cause__))
        return await http_exception_handler(request, error)

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, error: InputError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_request: Request, error: ConfigurationError) -> JSONResponse:
        # The server's own settings (a missing OPENAI_API_KEY): not the caller's fault.
        return JSONResponse(status_code=503, content={"detail": str(error)})

    @app.exception_handler(RuntimeError)
    async def internal_error(request: Request, error: RuntimeError) -> JSONResponse:
        # Not the caller's fault and not one of ours: the log gets the traceback, the
        # caller a labelled 500 (the message may hold internals, so only the class).
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _internal_error(error)

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
        # Any other exception (a bug) reaches Starlette's outermost middleware, which
        # sends this and re-raises it for the server to log with its traceback: the
        # caller gets the one shape, never a text/plain "Internal Server Error".
        return _internal_error(error)


def _not_json(request: Request, errors: list[FieldError]) -> str | None:
    """What to say when a JSON body came as another media type (curl's ``--data`` sends
    ``application/x-www-form-urlencoded``): FastAPI then validates the raw bytes, and
    pydantic's words ("a valid dictionary") would not tell the client why."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    if not any(error.loc == ["body"] and error.type == "model_attributes_type" for error in errors):
        return None
    shown = repr(_cut(media_type)) if media_type else "none"
    return f"the body must be JSON: send Content-Type: application/json (this request's: {shown})"


def _unreadable_body(cause: BaseException) -> str:
    """Why a JSON body could not be parsed, without quoting it."""
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not UTF-8 (byte {cause.start}); expected a JSON document in UTF-8"
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply; expected the documented request body"
    # int()'s limit of 4,300 digits is a ValueError; a client gone mid-body, ClientDisconnect
    return f"the body could not be read as JSON ({type(cause).__name__})"


def _internal_error(error: Exception) -> JSONResponse:
    detail = f"internal error ({type(error).__name__}); the server's log has the details"
    return JSONResponse(status_code=500, content={"detail": detail})


def _allowed(request: Request) -> list[str]:
    """Every method that some route serves on the request's path."""
    scope = {**request.scope, "method": ""}  # so that a route's path alone decides
    methods: set[str] = set()
    for route in request.app.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] != Match.NONE:
            methods |= route_methods
    return sorted(methods)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route for these error statuses, in the one shape."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]} for status in statuses
    }


_MEANINGS = {
    400: "The body could not be read as JSON (not UTF-8, nested too deeply, or the client "
    "went away mid-body)",
    401: "API key missing or wrong (send Authorization: Bearer KEY or X-API-Key: KEY)",
    404: "No job with this id",
    413: "Request body larger than the limit (max_request_bytes, or max_upload_bytes for uploads)",
    409: "The job has no results yet: ask again once some rows are done",
    415: "Not an upload encoding: JSON lines, float32 rows, a .npy or a .parquet file",
    422: "Invalid request: the message names the field or the embedding's index, and the problem",
    500: "An internal error; the server's log has the details",
    503: "The server's settings are incomplete, or a backend is not ready",
}

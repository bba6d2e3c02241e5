"""The OpenAPI schema's account of the API key, from the guard's own list of open paths.

The key is checked below FastAPI (:class:`~embed2prompt.service.security.ApiKeyGuard`),
where the schema cannot see it; this adds what a client, a generated client or a fuzzer
needs to know: the two ways to send the key, and on each operation outside the open
paths its ``security`` and its 401. Built from the same ``open_paths`` as the guard, so
that ``/docs`` and the service cannot disagree.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from embed2prompt.service.errors import error_responses

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_security(app: FastAPI, *, protected: bool, open_paths: frozenset[str]) -> None:
    """With ``protected`` (a key is set), mark every operation outside ``open_paths`` as
    needing the key (either scheme) and answering 401."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # FastAPI's own, which it caches on the app
            if protected:
                _add_security(schema, open_paths)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook


def _add_security(schema: dict[str, Any], open_paths: frozenset[str]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    unauthorised = error_responses(401)[401]
    response = {
        "description": unauthorised["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for path, operations in schema.get("paths", {}).items():
        if path in open_paths:
            continue
        for operation in operations.values():
            operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            operation.setdefault("responses", {})["401"] = response

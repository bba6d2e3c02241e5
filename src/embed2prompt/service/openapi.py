"""What the OpenAPI schema cannot see by itself: the API key, and the limits set at run time.

The key is checked below FastAPI (:class:`~embed2prompt.service.security.ApiKeyGuard`),
where the schema cannot see it; :func:`complete_schema` adds what a client, a generated
client or a fuzzer needs to know: the two ways to send the key, and on each operation
outside the open paths its ``security`` and its 401, built from the same ``open_paths``
as the guard, so that ``/docs`` and the service cannot disagree. It also writes the
limits that come from the settings and the loaded model into the request bodies: one
embedding's shape and values (:func:`~embed2prompt.service.vectors.embedding_schema`),
and how many embeddings a request, a job or an upload may carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from embed2prompt.service.errors import error_responses
from embed2prompt.service.vectors import embedding_schema
from embed2prompt.settings import Settings

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


EMBEDDING = "#/components/schemas/Embedding"
UPLOAD_PATH = "/jobs/upload"


def complete_schema(app: FastAPI, *, protected: bool, open_paths: frozenset[str]) -> None:
    """Add the run-time limits to the app's schema and, with ``protected`` (a key is
    set), mark every operation outside ``open_paths`` as needing the key (either
    scheme) and answering 401. Built on first use, after the models have loaded."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # FastAPI's own, which it caches on the app
            inverter = app.state.models.inverter
            dimension = inverter.dimension if inverter is not None else None
            _add_limits(schema, app.state.settings, dimension)
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


def _add_limits(schema: dict[str, Any], settings: Settings, dimension: int | None) -> None:
    """One ``Embedding`` component, used by every body that carries embeddings, each
    body's count limit, and the aligners a request may name."""
    aligners = _aligner_names(settings)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # With aligners, an embedding has the model's dimension or an aligner's.
    components["Embedding"] = embedding_schema(None if aligners else dimension)
    example = [[0.05] * dimension] if dimension is not None else None
    paths = schema.get("paths", {})
    limits = {  # path: the body's list, and how long it may be
        "/generate_prompts_parallel": ("embeddings", settings.max_embeddings_per_request),
        "/jobs": ("embeddings", settings.max_embeddings_per_job),
        "/embed": ("texts", settings.max_embeddings_per_request),
    }
    for path, (name, limit) in limits.items():
        model = _request_model(schema, paths.get(path, {}).get("post", {}))
        if model is None or name not in model.get("properties", {}):
            continue
        field = model["properties"][name]
        field["maxItems"] = limit
        field["description"] = f"{field.get('description', '')} At most {limit}.".strip()
        if name != "embeddings":
            continue
        field["items"] = {"$ref": EMBEDDING}
        for shown in model.get("examples", []):
            if example is not None:
                shown["embeddings"] = example
            else:
                shown.pop("embeddings", None)
    upload = paths.get(UPLOAD_PATH, {}).get("post", {})
    for content in upload.get("requestBody", {}).get("content", {}).values():
        if content.get("schema", {}).get("type") == "array":  # JSON lines
            content["schema"]["items"] = {
                "anyOf": [
                    {"$ref": EMBEDDING},
                    {
                        "type": "object",
                        "properties": {"embedding": {"$ref": EMBEDDING}},
                        "required": ["embedding"],
                    },
                ]
            }
            content["schema"]["maxItems"] = settings.max_embeddings_per_job
    _name_the_aligners(schema, aligners)
    _document_batch_mode(schema, settings)


def _document_batch_mode(schema: dict[str, Any], settings: Settings) -> None:
    """What ``"mode": "batch"`` needs on this server, in the schema as the handler checks
    it: a server whose generator is not openai offers "sync" alone; on one that is, a
    batch job evaluates quality and names no aligner."""
    paths = schema.get("paths", {})
    if settings.generator != "openai":
        upload = paths.get(UPLOAD_PATH, {}).get("post", {})
        for parameter in upload.get("parameters", []):
            if parameter.get("name") == "mode":
                parameter["schema"] = {**parameter.get("schema", {}), "const": "sync"}
                parameter["schema"].pop("enum", None)
    model = _request_model(schema, paths.get("/jobs", {}).get("post", {}))
    if model is None or "mode" not in model.get("properties", {}):
        return
    mode = model["properties"]["mode"]
    if settings.generator != "openai":
        mode.pop("enum", None)
        mode["const"] = "sync"
        return
    model["if"] = {"properties": {"mode": {"const": "batch"}}, "required": ["mode"]}
    model["then"] = {
        "properties": {"evaluate_quality": {"const": True}, "aligner": {"type": "null"}},
        "required": ["evaluate_quality"],
    }


def _request_model(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    """The component schema of an operation's JSON body, if it has one."""
    content = operation.get("requestBody", {}).get("content", {})
    reference = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    name = reference.rpartition("/")[2]
    model: dict[str, Any] | None = schema["components"]["schemas"].get(name)
    return model


def _aligner_names(settings: Settings) -> list[str]:
    """The aligners in the settings' folder (``NAME.npz``), which a request may name."""
    folder = getattr(settings, "aligner_folder", None)
    return sorted(path.stem for path in Path(folder).glob("*.npz")) if folder else []


def _name_the_aligners(schema: dict[str, Any], aligners: list[str]) -> None:
    """Each request's ``aligner``: one of ``aligners``, or null (none)."""
    allowed: dict[str, Any] = (
        {"anyOf": [{"type": "string", "enum": aligners}, {"type": "null"}]}
        if aligners
        else {"type": "null"}
    )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            model = _request_model(schema, operation)
            if model is not None and "aligner" in model.get("properties", {}):
                field = model["properties"]["aligner"]
                model["properties"]["aligner"] = {
                    **{key: field[key] for key in ("title", "description") if key in field},
                    **allowed,
                }
            parameters = operation.get("parameters", [])
            for parameter in [p for p in parameters if p.get("name") == "aligner"]:
                if aligners:  # a query string has no null: the parameter is left out
                    parameter["schema"] = {"type": "string", "enum": aligners}
                else:
                    parameters.remove(parameter)

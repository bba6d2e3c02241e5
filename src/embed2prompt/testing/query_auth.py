"""Azure-style authentication by query string, as some OpenAI-compatible deployments do.

A server configured with ``required_query`` (say ``{"api-key": K, "api-version": V}``)
answers any request without those parameters with Azure's 401, on every endpoint: the
chat and embeddings endpoints and the Files and Batches ones alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web


def lacks_query(request: web.Request, required: Mapping[str, str] | None) -> bool:
    """Whether ``request`` misses one of ``required``'s parameters or has another value."""
    return any(request.query.get(name) != value for name, value in (required or {}).items())


def query_refusal() -> web.Response:
    """Azure's answer to a request without its ``api-key`` (or with a wrong one)."""
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource."
    )
    return web.json_response({"error": {"code": "401", "message": message}}, status=401)

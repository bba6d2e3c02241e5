"""The service against a hostile or careless client (issue 19), in process.

Each request goes through the real app of ``create_app`` (its middleware, guards, error
handlers and routes) as ASGI messages, so that a test can see what the app read of a
body, not only what it answered. The models are not loaded: every request here is
answered before a route would need them. The cases that need them (vectors that cannot
be normalised) run against the real process in ``test_service.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from embed2prompt.errors import InputError
from embed2prompt.inputs import check_embeddings
from embed2prompt.redaction import CredentialFilter, hide_credentials, hide_url_credentials
from embed2prompt.service.app import create_app
from embed2prompt.service.errors import MAX_ERRORS
from embed2prompt.service.vectors import check_vectors
from embed2prompt.settings import Settings

KEY = "svc-secret-key-4242"
AUTH = [("x-api-key", KEY)]
JSON = [("content-type", "application/json")]
MAX_BYTES = 4096


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes
    reads: int  # body messages the app took from the server
    unread: int = 0  # body messages left unread
    raised: Exception | None = None  # re-raised to the server after the answer

    @property
    def body(self) -> Any:
        # Strict JSON: NaN or Infinity in an answer is a bug (most clients refuse it).
        return json.loads(self.raw, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


@dataclass
class Client:
    app: FastAPI
    log: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | list[bytes] = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """One request as ASGI messages; ``body`` as a list is sent chunked (no length)."""
        chunks = body if isinstance(body, list) else [body]
        queue: list[dict[str, Any]] = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        all_headers = list(headers or [])
        if isinstance(body, bytes):
            all_headers.append(("content-length", str(len(body))))
        reads = 0
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal reads
            if queue:
                reads += 1
                return queue.pop(0)
            await asyncio.Event().wait()  # a real server waits for the disconnect here
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        raised = None
        try:
            asyncio.run(asyncio.wait_for(self.app(scope, receive, send), timeout=30))
        except Exception as error:  # Starlette re-raises a bug, once answered, for the log
            raised = error
        start = next(m for m in sent if m["type"] == "http.response.start")
        raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        names = {k.decode(): v.decode() for k, v in start["headers"]}
        return Answer(start["status"], names, raw, reads, len(queue), raised)


def _settings(**changes: Any) -> Settings:
    return Settings(api_key=SecretStr(KEY), max_request_bytes=MAX_BYTES, **changes)


@pytest.fixture(scope="module")
def client() -> Client:
    return Client(create_app(_settings()))


@pytest.fixture(scope="module")
def roomy_client() -> Client:
    """Bodies up to 64 KiB (``client`` refuses those over 4 KiB)."""
    return Client(create_app(Settings(api_key=SecretStr(KEY), max_request_bytes=65536)))


def _generate(client: Client, raw: bytes, path: str = "/generate_prompts_parallel") -> Answer:
    return client.call("POST", path, raw, JSON + AUTH)


def _assert_error_shape(answer: Answer) -> dict[str, Any]:
    """The one error shape: ``detail``, a line; ``errors`` for invalid requests."""
    body = answer.body
    assert isinstance(body, dict)
    assert set(body) <= {"detail", "errors"}, body
    assert isinstance(body["detail"], str)
    for error in body.get("errors", []):
        assert set(error) == {"loc", "msg", "type"}, error  # never the input
    return body


# --- 1. non-finite numbers, anywhere, are a 422 (they were a 500) -----------------

NON_FINITE_BODIES = [
    b'{"embeddings": [[0.1]], "max_concurrent": Infinity}',
    b'{"embeddings": [[0.1]], "max_concurrent": NaN}',
    b'{"embeddings": [[0.1]], "max_concurrent": -Infinity}',
    b'{"embeddings": [[0.1]], "max_concurrent": 1e400}',
    b'{"embeddings": NaN}',
    b'{"embeddings": Infinity}',
    b'{"embeddings": [NaN]}',
    b'{"embeddings": [[0.1], [[NaN]]]}',
    b'{"embeddings": [[0.1], [1e400, [Infinity]]]}',
    b'{"embeddings": [[0.1]], "foo": NaN}',
    b'{"embeddings": [[0.1]], "evaluate_quality": NaN}',
    b'{"embeddings": [[0.1]], "rate_limit_tier": Infinity}',
    b'{"embeddings": [[0.1]], "return_metadata": -1e999}',
    b'{"embeddings": [[0.1]], "generate_variants": [NaN, {"a": Infinity}]}',
    b"NaN",
    b"[Infinity]",
    b'{"embeddings": {"0": NaN}}',
]


@pytest.mark.parametrize("path", ["/generate_prompts_parallel", "/jobs"])
@pytest.mark.parametrize("raw", NON_FINITE_BODIES)
def test_a_non_finite_number_anywhere_is_a_clean_422(client: Client, path: str, raw: bytes) -> None:
    answer = _generate(client, raw, path)
    assert answer.status == 422, answer.raw
    body = _assert_error_shape(answer)
    assert body["errors"], body


def test_a_422_does_not_echo_the_body(client: Client) -> None:
    big = "x" * 3000
    for raw in (
        json.dumps({"embeddings": big}).encode(),  # a huge value of the wrong type
        json.dumps({"embeddings": [[0.1]], big: 1}).encode(),  # a huge unknown field
        json.dumps({"embeddings": [[big]]}).encode(),
    ):
        answer = _generate(client, raw)
        assert answer.status == 422
        _assert_error_shape(answer)
        assert len(answer.raw) < 1000
        assert "x" * 200 not in answer.raw.decode()


def test_a_422_lists_at_most_max_errors_and_counts_the_rest(client: Client) -> None:
    raw = json.dumps({"embeddings": [["a"] * 300]}).encode()
    answer = _generate(client, raw)
    assert answer.status == 422
    body = _assert_error_shape(answer)
    assert len(body["errors"]) == MAX_ERRORS
    assert body["errors"][0] == {
        "loc": ["body", "embeddings", 0, 0],
        "msg": "Input should be a valid number",
        "type": "float_type",
    }
    assert body["detail"].startswith("invalid request: body.embeddings.0.0: Input should be")
    assert body["detail"].endswith("(and 297 more)")


def test_malformed_json_is_a_422_saying_why_without_the_body(client: Client) -> None:
    answer = _generate(client, b'{"embeddings": [[0.1, oops-secret-ish]]}')
    assert answer.status == 422
    body = _assert_error_shape(answer)
    assert body["errors"][0]["type"] == "json_invalid"
    assert "JSON decode error: Expecting value" in body["detail"]
    assert "oops" not in answer.raw.decode()


@pytest.mark.parametrize("path", ["/generate_prompts_parallel", "/jobs", "/embed"])
@pytest.mark.parametrize(
    ("headers", "shown"),
    [
        (
            [("content-type", "application/x-www-form-urlencoded")],
            "'application/x-www-form-urlencoded'",
        ),
        ([("content-type", "text/plain; charset=utf-8")], "'text/plain'"),
        ([], "none"),
    ],
)
def test_a_json_body_sent_as_another_type_is_told_to_send_json(
    client: Client, path: str, headers: list[tuple[str, str]], shown: str
) -> None:
    """curl --data sends application/x-www-form-urlencoded; FastAPI then validated the
    bytes and said only "Input should be a valid dictionary"."""
    answer = client.call("POST", path, b'{"embeddings": [[0.1]]}', headers + AUTH)
    assert answer.status == 422, answer.raw
    body = _assert_error_shape(answer)
    assert body["detail"] == (
        f"the body must be JSON: send Content-Type: application/json (this request's: {shown})"
    )
    assert body["errors"][0]["loc"] == ["body"]


@pytest.mark.parametrize("path", ["/generate_prompts_parallel", "/jobs", "/embed"])
@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"embeddings": [[0.1\xff]]}', "the body is not UTF-8 (byte 20); expected"),
        (b'{"embeddings": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"embeddings": [[' + b"9" * 5000 + b"]]}", "could not be read as JSON (ValueError)"),
    ],
)
def test_a_body_json_cannot_parse_is_a_400_saying_why(
    roomy_client: Client, path: str, raw: bytes, detail: str
) -> None:
    """FastAPI answers each of these "There was an error parsing the body"."""
    answer = roomy_client.call("POST", path, raw, JSON + AUTH)
    assert answer.status == 400, answer.raw
    assert detail in _assert_error_shape(answer)["detail"]
    assert b"9999" not in answer.raw  # the body is not quoted


@pytest.mark.parametrize(
    ("method", "path", "headers", "raw", "status"),
    [
        ("POST", "/generate_prompts_parallel", JSON, b"{}", 401),
        ("GET", "/jobs/x", [], b"", 401),
        ("GET", "/no-such-route", AUTH, b"", 404),
        ("GET", "/generate_prompts_parallel", AUTH, b"", 405),
        ("POST", "/generate_prompts_parallel", JSON + AUTH, b"x" * (MAX_BYTES + 1), 413),
        ("POST", "/jobs/upload", [("content-type", "text/csv"), *AUTH], b"0.1,0.2", 415),
        ("POST", "/jobs", JSON + AUTH, b"{}", 422),
        ("GET", "/jobs/x/results?limit=0", AUTH, b"", 422),
        ("POST", "/jobs/upload?max_concurrent=many", AUTH, b"", 422),
    ],
)
def test_every_4xx_has_the_one_error_shape(
    client: Client,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    raw: bytes,
    status: int,
) -> None:
    answer = client.call(method, path, raw, headers)
    assert answer.status == status, answer.raw
    _assert_error_shape(answer)
    assert answer.headers["content-type"] == "application/json"


# --- 2. /health: no secrets, no calls upstream ------------------------------------


@dataclass
class Upstream:
    """A loopback HTTP server that counts connections and keeps what it was sent."""

    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()


SECRETS = {
    "openai_api_key": "sk-openai-secret-7777",
    "password": "url-password-8888",
    "query": "query-token-9999",
    "redis": "redis-password-6666",
}


def _secret_settings(port: int) -> Settings:
    """Credentials in every setting that can hold one, the API backends upstream."""
    return _settings(
        embedder="openai",
        generator="openai",
        openai_api_key=SecretStr(SECRETS["openai_api_key"]),
        openai_base_url=f"http://proxy-user:{SECRETS['password']}@127.0.0.1:{port}/v1"
        f"?api-key={SECRETS['query']}",
        redis_url=SecretStr(f"redis://:{SECRETS['redis']}@127.0.0.1:1/0"),
    )


def _assert_no_secret(text: str) -> None:
    for secret in [KEY, "proxy-user", *SECRETS.values()]:
        assert secret not in text


def _with_upstream(check: Any) -> Upstream:
    """Run ``check(upstream)`` (blocking requests to the app) beside a live upstream."""
    upstream = Upstream()

    async def main() -> None:
        server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
        upstream.port = server.sockets[0].getsockname()[1]
        async with server:
            await asyncio.to_thread(check, upstream)

    asyncio.run(main())
    return upstream


def test_health_reports_what_is_loaded_without_secrets_or_upstream_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[Answer] = []

    def check(upstream: Upstream) -> None:
        app = Client(create_app(_secret_settings(upstream.port)))
        answers.extend(app.call("GET", "/health") for _ in range(3))

    caplog.set_level(logging.DEBUG)
    upstream = _with_upstream(check)
    assert upstream.connections == 0  # anyone may call /health; it calls nobody
    for answer in answers:
        assert answer.status == 200
        assert answer.body["status"] == "loading"  # the models load in the lifespan
        assert answer.body["backends"] == {
            "embedder": {"kind": "openai"},
            "generator": {"kind": "openai"},
        }
        _assert_no_secret(answer.raw.decode())
    _assert_no_secret(caplog.text)


def test_ready_needs_the_key_and_probes_upstream_without_leaking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[Answer] = []

    def check(upstream: Upstream) -> None:
        app = Client(create_app(_secret_settings(upstream.port)))
        answers.append(app.call("GET", "/ready"))
        answers.append(app.call("GET", "/ready", headers=AUTH))

    caplog.set_level(logging.DEBUG)
    upstream = _with_upstream(check)
    refused, probed = answers
    assert refused.status == 401
    assert probed.status == 503  # reachable, but the models are not loaded
    assert probed.body["status"] == "not ready"
    generator = probed.body["backends"]["generator"]
    assert generator["reachable"] is True
    # The settings' URL carries a user, password and query: each shown as ***.
    assert generator["base_url"] == f"http://***@127.0.0.1:{upstream.port}/v1?***"
    _assert_no_secret(refused.raw.decode() + probed.raw.decode() + caplog.text)
    # The probe itself carries the key in its header, and the URL's query as every API
    # call does (an Azure-style key rides there), but not the URL's user and password.
    assert len(upstream.requests) == 2  # one a backend
    head = upstream.requests[0].decode()
    assert head.startswith(f"GET /v1/models?api-key={SECRETS['query']} HTTP/1.1")
    assert f"Bearer {SECRETS['openai_api_key']}" in head
    assert SECRETS["password"] not in head


def test_a_url_is_shown_without_what_can_hold_a_credential() -> None:
    """One rule for /health's base_url, the shared limiter's errors and the CLI's
    resume hint: ``***`` where a user, password, query or fragment was."""
    for given, shown in [
        ("http://u:p@host:8080/v1?key=s#f", "http://***@host:8080/v1?***#***"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://u@[::1]:9/v1", "http://***@[::1]:9/v1"),
        ("redis://:pw@127.0.0.1:6379/0?password=pw2", "redis://***@127.0.0.1:6379/0?***"),
        ("rediss://user:p@ss@host/1", "rediss://***@host/1"),  # an @ in the password
        ("http://localhost:8080/v1", "http://localhost:8080/v1"),
    ]:
        assert hide_url_credentials(given) == shown


def test_a_log_line_shows_no_url_credential_of_any_kind() -> None:
    """The log filter's rule: a URL's user, password, query and fragment are ``***``
    wherever the URL is in the line, however malformed (the SDK joins a base URL that
    has a query with the path after it: the key leaked into the service's log so)."""
    for line, shown in [
        (
            "HTTP Request: POST http://u:pw@127.0.0.1:9/v1/?api-key=SECRETchat/completions "
            '"HTTP/1.1 404 Not Found"',
            'HTTP Request: POST http://***@127.0.0.1:9/v1/?*** "HTTP/1.1 404 Not Found"',
        ),
        ("GET https://h/v1/models?key=SECRET&x=1 200", "GET https://h/v1/models?*** 200"),
        ("at 'http://h/v1#SECRET'", "at 'http://h/v1#***'"),
        ("redis://:SECRET@h:6379/0 is down", "redis://***@h:6379/0 is down"),
        ("GET /jobs?limit=5 HTTP/1.1 200", "GET /jobs?limit=5 HTTP/1.1 200"),  # not a URL's
        ("key SECRET-KEY-1 in a message", "key *** in a message"),
    ]:
        assert hide_credentials(line, ["SECRET-KEY-1"]) == shown
    record = logging.LogRecord(
        "httpx", logging.INFO, "", 0, "GET %s", ("http://h/?k=SECRET",), None
    )
    assert CredentialFilter().filter(record)
    assert record.getMessage() == "GET http://h/?***"


# --- 3. the key before the body ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"embeddings": [[NaN]], "max_concurrent": Infinity}',
        b"\xff\xfe not even utf-8",
        b"x" * (MAX_BYTES * 10),  # over the size limit: still a 401, not a 413
        [b"x" * MAX_BYTES] * 10,  # the same, chunked
    ],
)
@pytest.mark.parametrize("path", ["/generate_prompts_parallel", "/jobs", "/jobs/upload"])
def test_without_the_key_no_body_is_read(
    client: Client, path: str, body: bytes | list[bytes]
) -> None:
    for headers in ([], [("authorization", "Bearer wrong")], [("x-api-key", KEY + "x")]):
        answer = client.call("POST", path, body, JSON + headers)
        assert answer.status == 401, answer.raw
        assert answer.reads == 0  # neither read nor parsed
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "API key" in _assert_error_shape(answer)["detail"]


def test_a_chunked_body_over_the_limit_is_a_413_through_the_whole_app(client: Client) -> None:
    for path in ("/generate_prompts_parallel", "/jobs"):
        answer = client.call("POST", path, [b'{"a": "', b"x" * MAX_BYTES, b'"}'], JSON + AUTH)
        assert answer.status == 413, answer.raw  # was a 400
        assert "max_request_bytes" in _assert_error_shape(answer)["detail"]
        assert answer.unread == 0  # drained, so that the client reads the 413


# --- 4. strict types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_value", "location", "message"),
    [
        ({"embeddings": [["0.1", "0.2"]]}, ["body", "embeddings", 0, 0], "valid number"),
        ({"embeddings": [[True, False]]}, ["body", "embeddings", 0, 0], "valid number"),
        ({"embeddings": [[0.1]], "max_concurrent": "5"}, ["body", "max_concurrent"], "integer"),
        ({"embeddings": [[0.1]], "max_concurrent": True}, ["body", "max_concurrent"], "integer"),
        ({"embeddings": [[0.1]], "max_concurrent": 5.5}, ["body", "max_concurrent"], "integer"),
        (
            {"embeddings": [[0.1]], "evaluate_quality": "false"},
            ["body", "evaluate_quality"],
            "valid boolean",
        ),
        ({"embeddings": [[0.1]], "return_metadata": 1}, ["body", "return_metadata"], "boolean"),
    ],
)
@pytest.mark.parametrize("path", ["/generate_prompts_parallel", "/jobs"])
def test_values_of_another_type_are_refused_not_coerced(
    client: Client, path: str, field_value: dict[str, Any], location: list[Any], message: str
) -> None:
    answer = _generate(client, json.dumps(field_value).encode(), path)
    assert answer.status == 422, answer.raw
    error = _assert_error_shape(answer)["errors"][0]
    assert error["loc"] == location
    assert message in error["msg"]


def test_values_no_embedding_holds_are_refused_naming_why() -> None:
    """One rule in every layer (inputs.check_embeddings; the service's check_vectors is
    it): denormal numbers and values beyond float32's range are refused up front."""
    good = [0.5] * 4
    cases = [
        ([good, [1e308] * 4], "embedding 1 contains 1e+308, beyond float32's range"),
        ([[4e38, 0, 0, 0]], "embedding 0 contains 4e+38, beyond float32's range"),
        ([[1e-320, 0, 0, 0]], "embedding 0 contains a denormal number (1e-320"),
        ([good, [0.5, 0.5, 5e-324, 0.5]], "embedding 1 contains a denormal number"),
    ]
    for rows, message in cases:
        for check in (check_vectors, check_embeddings):
            with pytest.raises(InputError) as caught:
                check(rows, 4)
            assert message in str(caught.value)
    with pytest.raises(InputError, match="embedding 12 contains 1e"):
        check_vectors([[1e308] * 4], 4, first_index=12)
    with pytest.raises(InputError, match="embedding 0 contains NaN"):
        check_vectors([[float("nan")] * 4], 4)
    # Everything else within range is normalised, however large or small: the length
    # neither overflows nor underflows (values near 1e-300 had a length of 0).
    rows = [good, [3e38] * 4, [1e-150] * 4, [1e-300, 0, 0, 0], [3, 0, 0, 4]]
    unit = check_vectors(rows, 4)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(unit[4], [0.6, 0, 0, 0.8], rtol=1e-6)


# --- 5. the documents agree with the service -------------------------------------


def _operations(client: Client) -> Iterator[tuple[str, str, dict[str, Any]]]:
    schema = client.call("GET", "/openapi.json").body
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method.upper(), operation


def test_the_schema_says_which_operations_need_the_key_and_the_service_agrees(
    client: Client,
) -> None:
    schema = client.call("GET", "/openapi.json").body
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    open_operations = []
    for path, method, operation in _operations(client):
        answer = client.call(method, path.replace("{job_id}", "x"), b"", JSON)
        if "security" in operation:
            assert answer.status == 401, (method, path)
            assert "401" in operation["responses"]
        else:
            assert answer.status != 401, (method, path)
            open_operations.append(path)
    assert open_operations == ["/health"]
    for path in ("/docs", "/redoc", "/openapi.json"):  # documentation: open, as the README says
        assert client.call("GET", path).status == 200


def test_the_schema_documents_the_error_responses(client: Client) -> None:
    schema = client.call("GET", "/openapi.json").body
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    assert schema["components"]["schemas"]["ErrorResponse"]["properties"]["detail"] == {
        "type": "string",
        "title": "Detail",
        "description": "What went wrong, in one line.",
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    expected = {
        ("POST", "/generate_prompts_parallel"): {"400", "401", "413", "422"},
        ("POST", "/jobs"): {"400", "401", "413", "422"},
        ("POST", "/jobs/upload"): {"401", "413", "415", "422"},
        ("GET", "/jobs/{job_id}"): {"401", "404"},
        ("GET", "/jobs/{job_id}/results"): {"401", "404", "422"},
        ("DELETE", "/jobs/{job_id}"): {"401", "404"},
    }
    for path, method, operation in _operations(client):
        for status in expected.get((method, path), set()):
            response = operation["responses"][status]
            assert response["content"]["application/json"]["schema"] == error, (path, status)


def test_a_runtime_error_is_a_labelled_500_in_the_one_shape(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # This app never ran its lifespan, so its models are not loaded: a RuntimeError
    # outside embed2prompt's error tree, raised by a valid request.
    answer = _generate(client, json.dumps({"embeddings": [[0.1] * 384]}).encode())
    assert answer.status == 500
    body = _assert_error_shape(answer)
    assert body["detail"].startswith("internal error (RuntimeError)")
    assert "not loaded" in caplog.text  # the log has the message and the traceback
    assert answer.raised is None  # answered and logged here


def test_any_other_exception_is_a_500_in_the_one_shape_and_reaches_the_log() -> None:
    """A bug of any class (an upload's huge integer was an OverflowError, its deep
    nesting a RecursionError) answers JSON, not text/plain "Internal Server Error", and
    is re-raised to the server, which logs its traceback."""
    app = create_app(_settings())

    async def broken() -> None:
        raise OverflowError("int too large to convert to float")

    app.add_api_route("/broken", broken, methods=["GET"])
    answer = Client(app).call("GET", "/broken", headers=AUTH)
    assert answer.status == 500
    assert answer.headers["content-type"] == "application/json"
    body = _assert_error_shape(answer)
    assert body == {"detail": "internal error (OverflowError); the server's log has the details"}
    assert isinstance(answer.raised, OverflowError)  # for uvicorn to log

"""``python -m bench fuzz``: schemathesis against the running service (issue 19).

The service runs as a user runs it (``python api/app.py``: uvicorn on loopback, an API
key set, the OpenAI generator pointed at the local OpenAI-compatible server) and
schemathesis tests it from its own OpenAPI schema for a fixed time, with every check it
has: no 5xx, and every response conforming to the schema (status code, content type,
headers, body), schema-valid requests accepted and invalid ones refused, the key
enforced. The table gives the requests sent, the 5xx answered and each conformance
failure found (check, operation), all targeted at zero.

    python -m bench fuzz              # 5 minutes
    python -m bench.fuzz --seconds 60 # shorter (``make test`` runs a bounded one)

Three things the schema cannot say are told to schemathesis here, not hidden from it:
how a JSON-lines upload is written (one embedding a line: the schema describes the body
as the array of those embeddings); that a binary upload (float32 rows, .npy, .parquet)
may be refused (422) although any bytes are schema-valid (a schema cannot say "a whole
number of rows of normal floats"); and that ``DELETE /jobs/{id}`` cancels a job and
keeps its results readable, where schemathesis's use-after-free check expects it gone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.engine import Row
from embed2prompt.inversion.model_paths import SMALL_MODEL, locate_model
from embed2prompt.service.openapi import UPLOAD_PATH
from embed2prompt.testing import OpenAITestServer, ServerConfig, free_port

ROOT = Path(__file__).resolve().parents[1]
SERVICE_KEY = "fuzz-service-key-7f3a"
UPSTREAM_KEY = "sk-fuzz-upstream-5c1e"
BENCH_SECONDS = 300.0


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_service(folder: Path, **settings: str) -> Iterator[ServiceProcess]:
    """``python api/app.py`` with these settings (environment variables), its output in
    ``folder/service.log``, once ``/health`` answers; stopped (SIGTERM) on exit."""
    port = free_port()
    log = folder / "service.log"
    env = {
        **os.environ,
        "EMBED2PROMPT_PORT": str(port),
        "EMBED2PROMPT_JOBS_DATABASE": str(folder / "jobs.sqlite3"),
        **settings,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "api/app.py"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not _answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)  # polling a process that is starting
        yield ServiceProcess(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class FuzzReport:
    """What a schemathesis run found."""

    seconds: float
    requests: int = 0
    server_errors: int = 0  # responses with status >= 500
    failures: Counter[str] = field(default_factory=Counter)  # "ST202 title: POST /jobs" -> n
    errors: list[str] = field(default_factory=list)  # schemathesis could not test something
    examples: list[str] = field(default_factory=list)  # the first failing exchange of each

    @property
    def clean(self) -> bool:
        return not (self.server_errors or self.failures or self.errors)

    def describe(self) -> str:
        lines = [
            f"{self.requests} requests in {self.seconds:.0f} s, {self.server_errors} 5xx, "
            f"{sum(self.failures.values())} conformance failures"
        ]
        lines += [f"  {count} x {name}" for name, count in self.failures.most_common()]
        lines += [f"  error: {error}" for error in self.errors]
        lines += [f"  e.g. {example}" for example in self.examples]
        return "\n".join(lines)


def _register_json_lines() -> None:
    """A JSON-lines body, generated from the schema as the array of its lines' values."""
    import schemathesis

    from embed2prompt.service.uploads import JSON_LINES

    @schemathesis.serializer(JSON_LINES)
    def json_lines(_context: Any, value: Any) -> dict[str, Any]:
        if isinstance(value, list):
            text = "".join(json.dumps(item) + "\n" for item in value)
        else:  # a negative case of another type: sent as its JSON, a line
            text = json.dumps(value) + "\n"
        return {"data": text.encode()}


def fuzz_service(url: str, key: str, *, seconds: float, seed: int = 0) -> FuzzReport:
    """Schemathesis's whole run (examples, coverage, fuzzing, stateful) against ``url``
    for ``seconds``, every check on; what it found."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events

    _register_json_lines()
    # schemathesis's default for schema-valid requests, plus 422 for uploads: any bytes
    # are a valid float32, .npy or .parquet body to a schema, not to the service.
    upload_answers = ["2xx", "3xx", "401", "403", "404", "409", "429", "422"]
    timeout = 120  # seconds a request may take: a busy machine answers slowly, not wrongly
    config = SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "max-time": seconds,
            "workers": 1,
            "request-timeout": timeout,
            # DELETE /jobs/{id} cancels a job and keeps what it has done readable (the
            # API's design), where this check expects it gone.
            "checks": {"enabled": True, "use_after_free": {"enabled": False}},
            # The key through the schema's own security schemes, so that the ignored-auth
            # check knows what to take away.
            "auth": {"openapi": {"bearer": {"bearer": key}, "apiKey": {"api_key": key}}},
            "operations": [
                {
                    "include-path": UPLOAD_PATH,
                    "checks": {"positive_data_acceptance": {"expected-statuses": upload_answers}},
                }
            ],
        }
    )
    # The schema's own request too (schemathesis's default: 10 s).
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, timeout=timeout)
    report = FuzzReport(seconds=seconds)
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _count(event, report, Status)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            report.errors.append(_cut(str(getattr(event, "info", event)), 300))
    report.seconds = time.monotonic() - started
    return report


def _count(event: Any, report: FuzzReport, status: Any) -> None:
    recorder = event.recorder
    for interaction in recorder.interactions.values():
        report.requests += 1
        response = interaction.response
        if response is not None and response.status_code >= 500:
            report.server_errors += 1  # named by the not_a_server_error check below
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            name = f"{failure.code} {failure.title}: {recorder.label}"
            if name not in report.failures:
                report.examples.append(_example(name, recorder, case_id))
            report.failures[name] += 1


def _example(name: str, recorder: Any, case_id: str) -> str:
    interaction = recorder.interactions.get(case_id)
    if interaction is None or interaction.response is None:
        return name
    request, response = interaction.request, interaction.response
    sent = _cut(repr(request.body or b""), 200)
    answered = _cut(response.content.decode(errors="replace") if response.content else "", 200)
    return f"{name} -- {request.method} {request.uri} {sent} -> {response.status_code} {answered}"


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


@contextmanager
def fuzzable_service(folder: Path) -> Iterator[ServiceProcess]:
    """The service as the fuzzer meets it: a key, small limits and the small decoder (so
    that schema-valid requests are cheap), the OpenAI generator on the local
    OpenAI-compatible server."""
    with (
        OpenAITestServer(ServerConfig(api_key=UPSTREAM_KEY)) as upstream,
        running_service(
            folder,
            API_KEY=SERVICE_KEY,
            OPENAI_API_KEY=UPSTREAM_KEY,
            OPENAI_BASE_URL=upstream.url,
            EMBED2PROMPT_GENERATOR="openai",
            EMBED2PROMPT_REFINEMENT_STEPS="0",
            EMBED2PROMPT_MODEL_PATH=str(locate_model(SMALL_MODEL)),
            EMBED2PROMPT_NUM_VARIANTS="1",
            EMBED2PROMPT_GENERATION_MAX_TOKENS="8",
            EMBED2PROMPT_MAX_EMBEDDINGS_PER_REQUEST="3",
            EMBED2PROMPT_MAX_EMBEDDINGS_PER_JOB="5",
            EMBED2PROMPT_MAX_REQUEST_BYTES="262144",
            EMBED2PROMPT_MAX_UPLOAD_BYTES="262144",
            OMP_NUM_THREADS="1",
        ) as service,
    ):
        yield service


def run(seconds: float, seed: int = 0) -> FuzzReport:
    with tempfile.TemporaryDirectory() as folder, fuzzable_service(Path(folder)) as service:
        return fuzz_service(service.url, SERVICE_KEY, seconds=seconds, seed=seed)


async def fuzz(seconds: float = BENCH_SECONDS) -> list[Row]:
    report = run(seconds)
    print(report.describe(), file=sys.stderr)
    failures = ", ".join(f"{count} {name}" for name, count in report.failures.most_common())
    return [
        Row(
            f"schemathesis {seconds / 60:.0f} min, every check, the service on loopback",
            f"{report.requests} requests, {report.server_errors} 5xx, "
            f"{sum(report.failures.values())} conformance failures"
            + (f" ({failures})" if failures else "")
            + (f", {len(report.errors)} errors" if report.errors else ""),
            "0 5xx, 0 conformance failures",
            report.clean,
        )
    ]


BENCHMARKS = {"fuzz": fuzz}


def main(argv: list[str] | None = None) -> int:
    import asyncio

    from bench.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=BENCH_SECONDS)
    args = parser.parse_args(argv)
    rows = asyncio.run(fuzz(args.seconds))
    print_table(rows)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Issue 18's measurements against a server whose limit is lower than the client was told.

``python -m bench peer``: the OpenAI Cookbook's ``api_request_parallel_processor.py``
(the script most people start from) beside embed2prompt's engine, 1,200 one-input
embedding requests each, told 600, 900 and 1,200 RPM against a server allowing 600, in
two behaviours of the local OpenAI-compatible server: a sliding 60 s window that counts
refused requests and answers 429 with ``retry-after: 1`` and no ``x-ratelimit-*``
headers (many OpenAI-compatible servers and proxies), and OpenAI's own per-second
enforcement with the headers. Every figure comes from the server's records, the same
for both clients.

The Cookbook script is not part of this repository (the tools this project is built
with may read public code but not commit it): it is run from the file given by
``--cookbook PATH`` or ``EMBED2PROMPT_COOKBOOK_SCRIPT`` (openai/openai-cookbook,
``examples/api_request_parallel_processor.py``, MIT licence), pinned by its commit: the
file is checked against its git blob id at ``COOKBOOK_COMMIT``, and a table measured with
another revision says so. Without it the peer's column says so. Its
``api_endpoint_from_url`` accepts only ``https://`` URLs, so for loopback it is given
one that reads the endpoint from an ``http://`` URL; nothing else of it is changed.

``python -m bench invert-limit``: the ``embed2prompt invert`` run of the issue, 400
rows with ``--steps 0 --evaluate --generator openai --rpm 600 --concurrency 50``
against the server allowing 300 a minute in a sliding window, no headers.

Both take minutes a run; ``python -m bench.peer --help`` shows how to make them
shorter (fewer requests, fewer runs, one behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from bench.engine import (
    MODEL,
    LimitRun,
    Row,
    embed_with_engine,
    limit_run,
    sliding_window_server,
)
from embed2prompt.inversion.model_paths import SMALL_MODEL, locate_model
from embed2prompt.openai_api.tokens import count_tokens
from embed2prompt.testing import OpenAITestServer, ServerConfig

LIMIT = 600  # the server's real requests per minute
TOLD = (600, 900, 1200)
ITEMS = 1200
RUNS = 3
COOKBOOK_COMMIT = "04a3090348d4ce2e7977612fdf99b7f906a00b43"
# The script's git blob id at that commit (`git rev-parse COMMIT:examples/...py`): a file
# that hashes to it is that revision byte for byte, wherever it was copied from.
COOKBOOK_BLOB = "d80765c0f46bd6f3ff7011688a5c77ccd64adec8"
BEHAVIOURS = {
    "sliding": "sliding 60 s window counting refusals, retry-after 1, no headers",
    "per-second": "per-second window (OpenAI's), x-ratelimit-* headers",
}


def server_config(behaviour: str, limit: float) -> ServerConfig:
    if behaviour == "sliding":
        return sliding_window_server(limit)
    return ServerConfig(rpm=limit, limit_window_s=1.0, latency_ms=200)


def git_blob_id(data: bytes) -> str:
    """The id git gives a file of these bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def cookbook_revision(path: Path) -> str:
    """Which revision of the Cookbook script ``path`` is, for the table: the pinned
    commit's, or another one named by its blob id."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SystemExit(
            f"cannot read the Cookbook script at {path} ({error.strerror}); expected "
            f"examples/api_request_parallel_processor.py of openai/openai-cookbook"
        ) from None
    blob = git_blob_id(data)
    if blob == COOKBOOK_BLOB:
        return f"commit {COOKBOOK_COMMIT[:7]}"
    return f"blob {blob[:7]}, not commit {COOKBOOK_COMMIT[:7]}'s"


def load_cookbook(path: Path) -> ModuleType:
    """The Cookbook script as a module, able to call a loopback (``http://``) URL."""
    spec = importlib.util.spec_from_file_location("api_request_parallel_processor", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the Cookbook script from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def api_endpoint_from_url(request_url: str) -> str:
        match = re.search(r"^https?://[^/]+/v\d+/(.+)$", request_url)
        if match is None:
            raise ValueError(f"not an OpenAI API URL: {request_url}")
        return match[1]

    module.api_endpoint_from_url = api_endpoint_from_url  # type: ignore[attr-defined]
    return module


async def embed_with_cookbook(
    cookbook: ModuleType, server: OpenAITestServer, rpm: float, texts: list[str]
) -> None:
    """The Cookbook script told ``rpm`` (and tokens without limit), its defaults
    otherwise (5 attempts), on a requests file of one-input embedding requests."""
    count_tokens("warm", model=MODEL)  # installs the tokenizer's file offline first
    with tempfile.TemporaryDirectory() as folder:
        requests = Path(folder) / "requests.jsonl"
        requests.write_text("".join(json.dumps({"model": MODEL, "input": t}) + "\n" for t in texts))
        await cookbook.process_api_requests_from_file(
            requests_filepath=str(requests),
            save_filepath=str(Path(folder) / "results.jsonl"),
            request_url=f"{server.url}/embeddings",
            api_key="sk-bench",
            max_requests_per_minute=float(rpm),
            max_tokens_per_minute=1e9,
            token_encoding_name="cl100k_base",
            max_attempts=5,
            logging_level=50,  # silent: it logs a line a failed request
        )


@dataclass(frozen=True)
class Setup:
    items: int
    runs: int
    told: tuple[int, ...]
    behaviours: tuple[str, ...]
    cookbook: Path | None


async def _measure(setup: Setup, behaviour: str, rpm: int, client: str) -> list[LimitRun]:
    runs = []
    for run in range(setup.runs):
        texts = [
            f"peer comparison {behaviour} {rpm} run {run}, item {i}" for i in range(setup.items)
        ]
        with OpenAITestServer(server_config(behaviour, LIMIT)) as server:
            if client == "peer":
                assert setup.cookbook is not None
                await embed_with_cookbook(load_cookbook(setup.cookbook), server, rpm, texts)
            else:
                await embed_with_engine(server, rpm, texts)
            runs.append(limit_run(server.stats(), texts, LIMIT))
        print(
            f"  {behaviour} told {rpm} {client} run {run + 1}: {runs[-1].describe()}",
            file=sys.stderr,
        )
    return runs


def _summary(runs: Sequence[LimitRun]) -> str:
    """Medians over the runs: wall time, 429s, the share of the limit, later 429s."""
    share = statistics.median(r.share for r in runs)
    later = statistics.median(r.later_share for r in runs)
    return (
        f"{statistics.median(r.seconds for r in runs):.1f} s, "
        f"{statistics.median(r.rate_limited for r in runs):.0f} 429s, {share:.1%} of the limit, "
        f"{later:.1%} 429s after 1 min, worst item {max(r.worst_attempts for r in runs)} "
        f"attempts, {max(r.failed for r in runs)} failed"
    )


async def compare(setup: Setup) -> list[Row]:
    # Read first: a missing script should stop the run before minutes of measuring.
    revision = cookbook_revision(setup.cookbook) if setup.cookbook is not None else ""
    rows = []
    for behaviour in setup.behaviours:
        for rpm in setup.told:
            ours = await _measure(setup, behaviour, rpm, "embed2prompt")
            if setup.cookbook is not None:
                peer = f"({revision}) " + _summary(await _measure(setup, behaviour, rpm, "peer"))
            else:
                peer = "not run: give --cookbook PATH (or EMBED2PROMPT_COOKBOOK_SCRIPT)"
            judged = behaviour == "sliding" and rpm > LIMIT
            passed = all(
                r.share >= 0.95 and r.later_share <= 0.02 and r.worst_attempts <= 3 and r.once
                for r in ours
            )
            rows.append(
                Row(
                    f"peer: {BEHAVIOURS[behaviour]}; told {rpm} vs {LIMIT}, n={setup.items}, "
                    f"{setup.runs} run(s)",
                    f"Cookbook: {peer}; embed2prompt: {_summary(ours)}",
                    "embed2prompt >= 95%, <= 2% 429s after 1 min, <= 3 attempts, each once"
                    if judged
                    else "(side by side)",
                    passed if judged else None,
                )
            )
    return rows


def _cookbook_path(given: str | None) -> Path | None:
    path = given or os.environ.get("EMBED2PROMPT_COOKBOOK_SCRIPT")
    return Path(path) if path else None


async def peer() -> list[Row]:
    return await compare(Setup(ITEMS, RUNS, TOLD, tuple(BEHAVIOURS), _cookbook_path(None)))


# ------------------------------------------------------------------ the invert run


INVERT_ROWS = 400
INVERT_LIMIT = 300  # the server's requests per minute; the CLI is told twice that


def invert_against_lower_limit(
    rows: int = INVERT_ROWS, runs: int = 1, limit: int = INVERT_LIMIT
) -> list[LimitRun]:
    """``embed2prompt invert`` told twice ``limit`` RPM against a server allowing
    ``limit`` in a sliding minute: each row's generation is an API call (the embedding
    of what it wrote is the local embedder's). A lower ``limit`` keeps the meaning on a
    machine whose CPU cannot invert rows as fast as 300 a minute: the client must be
    able to send faster than the server allows."""
    results = []
    vectors = np.random.default_rng(18).standard_normal((rows, 384)).astype(np.float32)
    for _ in range(runs):
        with (
            tempfile.TemporaryDirectory() as folder,
            OpenAITestServer(sliding_window_server(limit)) as server,
        ):
            np.save(Path(folder) / "vectors.npy", vectors)
            command = [
                sys.executable, "-m", "embed2prompt", "invert", "vectors.npy", "-o", "out.jsonl",
                "--steps", "0", "--evaluate", "--generator", "openai", "--rpm", str(2 * limit),
                "--concurrency", "50", "--no-progress", "--base-url", server.url,
            ]  # fmt: skip
            env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
            # The small decoder, as the table was measured: one pass, the engine is measured.
            env["EMBED2PROMPT_MODEL_PATH"] = str(locate_model(SMALL_MODEL))
            started = time.monotonic()
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
            seconds = time.monotonic() - started
            if done.returncode not in (0, 1):
                raise RuntimeError(f"embed2prompt invert failed:\n{done.stderr[-3000:]}")
            output = [
                json.loads(line) for line in (Path(folder) / "out.jsonl").read_text().splitlines()
            ]
            stats = server.stats()
        results.append(_invert_run(stats, output, rows, seconds, limit))
        print(f"  invert run: {results[-1].describe()}", file=sys.stderr)
    return results


def _invert_run(
    stats: dict[str, object],
    output: list[dict[str, object]],
    rows: int,
    seconds: float,
    limit: int,
) -> LimitRun:
    arrivals = stats["arrivals"]
    assert isinstance(arrivals, list)
    first = arrivals[0]["t"]
    last = arrivals[-1]["t"]
    ok = sum(a["outcome"] == "ok" for a in arrivals)
    later = [a for a in arrivals if a["t"] - first >= 60]
    attempts: dict[object, int] = {}
    for arrival in arrivals:
        attempts[arrival["label"]] = attempts.get(arrival["label"], 0) + 1
    succeeded = sum(bool(row.get("success")) for row in output)
    return LimitRun(
        share=ok / (limit / 60 * max(last - first, 1e-9)),
        rate_limited=sum(a["outcome"] == "429_limit" for a in arrivals),
        later_429s=sum(a["outcome"] == "429_limit" for a in later),
        later_requests=len(later),
        worst_attempts=max(attempts.values()),
        failed=rows - succeeded,
        once=len(output) == rows and len({row["index"] for row in output}) == rows,
        seconds=seconds,
    )


def _invert_summary(runs: Sequence[LimitRun]) -> str:
    """Medians over the runs (not the attempts per row: rows may share a prompt, which
    is what the server sees of a generation request)."""
    return (
        f"whole command {statistics.median(r.seconds for r in runs):.1f} s, "
        f"{statistics.median(r.rate_limited for r in runs):.0f} 429s, "
        f"{statistics.median(r.share for r in runs):.1%} of the limit, "
        f"{statistics.median(r.later_429s for r in runs):.0f} of "
        f"{statistics.median(r.later_requests for r in runs):.0f} requests "
        f"({statistics.median(r.later_share for r in runs):.1%}) 429 after 1 min, "
        f"{max(r.failed for r in runs)} rows failed, each row once: {all(r.once for r in runs)}"
    )


async def invert_limit(
    rows: int = INVERT_ROWS, runs: int = RUNS, limit: int = INVERT_LIMIT
) -> list[Row]:
    results = await asyncio.to_thread(invert_against_lower_limit, rows, runs, limit)
    passed = all(
        r.failed == 0 and r.share >= 0.90 and r.later_share <= 0.05 and r.once for r in results
    )
    return [
        Row(
            f"invert {rows} rows --steps 0 --evaluate --generator openai --rpm {2 * limit} "
            f"--concurrency 50; server {limit}/min sliding, no headers; {runs} run(s)",
            _invert_summary(results),
            "every row succeeds, >= 90% of the limit, <= 5% 429s after 1 min",
            passed,
        )
    ]


BENCHMARKS = {"peer": peer, "invert-limit": invert_limit}


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import print_table

    parser = argparse.ArgumentParser(
        prog="python -m bench.peer",
        description="Issue 18's comparisons, configurable (defaults: the full benchmark).",
    )
    parser.add_argument("which", choices=list(BENCHMARKS))
    parser.add_argument("--cookbook", help="the Cookbook's api_request_parallel_processor.py")
    parser.add_argument("--items", type=int, default=ITEMS, help="requests per run (peer)")
    parser.add_argument("--rows", type=int, default=INVERT_ROWS, help="rows (invert-limit)")
    parser.add_argument(
        "--limit", type=int, default=INVERT_LIMIT, help="the server's RPM (invert-limit)"
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--told", default=",".join(map(str, TOLD)), help="e.g. 900,1200")
    parser.add_argument("--behaviours", default=",".join(BEHAVIOURS), help="sliding,per-second")
    args = parser.parse_args(argv)
    if args.which == "peer":
        setup = Setup(
            items=args.items,
            runs=args.runs,
            told=tuple(int(rpm) for rpm in args.told.split(",")),
            behaviours=tuple(args.behaviours.split(",")),
            cookbook=_cookbook_path(args.cookbook),
        )
        rows = asyncio.run(compare(setup))
    else:
        rows = asyncio.run(invert_limit(args.rows, args.runs, args.limit))
    print_table(rows)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

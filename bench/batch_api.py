"""The Batch API mode at scale (issue 22): ``invert --batch-api`` end to end.

For each size N (``EMBED2PROMPT_BENCH_BATCH_API_ROWS``, comma-separated; default
100,000), N rows through ``embed2prompt invert --batch-api --evaluate --variants 3
--generator openai --embedder openai`` against the local server's Files and Batches
endpoints, with the batch-queue limit set to a quarter of the first stage's input
tokens, so that each stage takes several submissions. Every API stage is a batch (the
generations, the embeddings of ``text-embedding-3-small`` at the inverter's 384
dimensions, the rewrites and their evaluations), answered by the server's cheap
deterministic stand-ins. Local inversion is the one-pass search (``--steps 0``):
inversion is not what this measures.

Checked at each size: the rows written (each index exactly once), the run's own count
of files, batches and requests (``--status --json``, from its state file) against the
server's (nothing uploaded or run twice), the process's peak memory, and the wall time
split into local inversion and the API stages; across sizes, that the peak memory is
flat.

    EMBED2PROMPT_BENCH_BATCH_API_ROWS=2000,10000 python -m bench batch-api
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.batch import _PEAK
from bench.engine import Row
from bench.vectors import sample_vectors
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.testing import OpenAITestServer, ServerConfig

_TOKENS_PER_ROW = 100  # the first stage's input tokens a row: 3 generations of ~34
_DIMENSIONS = "384"  # text-embedding-3-small shortened to the inverter's embedder's
_INVERTED = "the API stages"  # the line the run prints once every row is inverted
_SIZES = "EMBED2PROMPT_BENCH_BATCH_API_ROWS"
_FLAT = 1.2  # the most the peak may grow from the smallest size to the largest


@dataclass(frozen=True, slots=True)
class _Measured:
    rows: int
    peak_mib: float
    seconds: float
    inversion_s: float


async def batch_api() -> list[Row]:
    sizes = [int(n) for n in os.environ.get(_SIZES, "100000").split(",")]
    table: list[Row] = []
    measured: list[_Measured] = []
    for rows in sizes:
        figures, size_rows = await asyncio.to_thread(_one_size, rows)
        measured.append(figures)
        table += size_rows
    if len(measured) > 1:
        small, large = measured[0], measured[-1]
        growth = large.peak_mib / small.peak_mib
        table.append(
            Row(
                f"invert --batch-api peak memory: {small.rows:,} vs {large.rows:,} rows",
                f"{small.peak_mib:.0f} MiB vs {large.peak_mib:.0f} MiB ({growth:.2f}x)",
                f"flat (< {_FLAT}x for {large.rows // small.rows}x the rows)",
                growth < _FLAT,
            )
        )
    return table


def _one_size(rows: int) -> tuple[_Measured, list[Row]]:
    queue = rows * _TOKENS_PER_ROW // 4
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "vectors.npy", Path(folder) / "prompts.jsonl"
        np.save(source, sample_vectors(rows))
        config = ServerConfig(batch_queue_tokens=queue, batch_delay_s=1.0)
        with OpenAITestServer(config) as server:
            env = {
                **os.environ,
                "OPENAI_API_KEY": "sk-bench",
                "EMBED2PROMPT_EMBEDDING_DIMENSIONS": _DIMENSIONS,
                "EMBED2PROMPT_BATCH_QUEUE_TOKENS": str(queue),
                "EMBED2PROMPT_BATCH_POLL_INITIAL_S": "0.2",
                "EMBED2PROMPT_BATCH_POLL_MAX_S": "2",
            }
            invert = [
                sys.executable, "-m", "embed2prompt", "invert", str(source), "-o", str(output),
                "--batch-api", "--evaluate", "--variants", "3", "--generator", "openai",
                "--embedder", "openai", "--embedding-model", "text-embedding-3-small",
                "--base-url", server.url, "--steps", "0", "--no-progress",
                "--inverter", str(SMALL_MODEL),  # as the tables in BENCHMARKS.md were measured
            ]  # fmt: skip
            measuring = [sys.executable, "-c", _PEAK, *invert]
            code, peak_kb, seconds, inversion_s = _timed(measuring, env)
            stats = server.stats(arrivals=False)["batch"]
        report = json.loads(
            subprocess.run(
                [*invert, "--status", "--json"], capture_output=True, text=True, env=env, check=True
            ).stdout
        )
        indices = [json.loads(line)["index"] for line in output.open()]
    figures = _Measured(rows, peak_kb / 1024, seconds, inversion_s)
    return figures, _rows_of(figures, code, indices, stats, report, queue)


def _timed(command: list[str], env: dict[str, str]) -> tuple[int, int, float, float]:
    """Exit code, peak RSS (KiB), wall seconds, and the seconds until every row was
    inverted (the run's stderr read as it comes)."""
    started = time.perf_counter()
    inverted = None
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stderr is not None
        assert process.stdout is not None
        for line in process.stderr:
            if inverted is None and line.startswith(_INVERTED):
                inverted = time.perf_counter() - started
        code, peak_kb = process.stdout.read().split()[-2:]
    seconds = time.perf_counter() - started
    return int(code), int(peak_kb), seconds, inverted if inverted is not None else seconds


def _rows_of(
    figures: _Measured,
    code: int,
    indices: list[int],
    stats: dict[str, Any],
    report: dict[str, Any],
    queue: int,
) -> list[Row]:
    rows = figures.rows
    once = sorted(indices) == list(range(rows))
    files = report["files"]
    run_batches = len({file["batch"] for file in files if file["batch"]})
    run_requests = sum(file["requests"] for file in files)
    twice = len(stats["custom_ids_submitted_twice"]) + len(stats["filenames_uploaded_twice"])
    agree = (
        len(files) == stats["files_uploaded"]
        and run_batches == stats["batches_created"]
        and run_requests == stats["requests_submitted"] == stats["distinct_custom_ids"]
    )
    by_endpoint = ", ".join(
        f"{count} {endpoint.rsplit('/', 1)[1]}"
        for endpoint, count in sorted(stats["batches_by_endpoint"].items())
    )
    name = f"invert --batch-api, {rows:,} rows, --evaluate --variants 3, --steps 0"
    api = figures.seconds - figures.inversion_s
    return [
        Row(
            f"{name}: rows written",
            f"{len(indices):,} of {rows:,}, each index once: {'yes' if once else 'NO'} "
            f"(exit {code})",
            "every row exactly once",
            once and len(indices) == rows and code == 0,
        ),
        Row(
            f"{name}: API files, batches, requests, the run's vs the server's "
            f"(queue limit {queue:,} tokens)",
            f"{len(files)} vs {stats['files_uploaded']} files, {run_batches} vs "
            f"{stats['batches_created']} batches ({by_endpoint}), {run_requests:,} vs "
            f"{stats['requests_submitted']:,} requests; {twice} run twice",
            "several submissions a stage, counts equal, nothing twice",
            agree and twice == 0 and stats["batches_created"] > 5,
        ),
        Row(
            f"{name}: peak memory; wall time (local inversion + API stages)",
            f"{figures.peak_mib:.0f} MiB; {figures.seconds / 60:.1f} min "
            f"({figures.inversion_s / 60:.1f} + {api / 60:.1f}), "
            f"{1000 * figures.seconds / rows:.1f} ms a row "
            f"({1000 * figures.inversion_s / rows:.1f} + {1000 * api / rows:.1f})",
            "-",
            None,
        ),
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"batch-api": batch_api}

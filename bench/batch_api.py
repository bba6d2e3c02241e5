"""The Batch API mode at scale (issue 22): ``invert --batch-api`` end to end.

N rows (default 100,000; ``EMBED2PROMPT_BENCH_BATCH_API_ROWS`` to change it) through
``embed2prompt invert --batch-api --evaluate --variants 3 --generator openai`` against
the local server's Files and Batches endpoints, with the batch-queue limit set to a
quarter of the first stage's input tokens, so that it takes several submissions. Local
inversion is the one-pass search (``--steps 0``) to keep it cheap, and the evaluation's
embeddings run locally with the inverter's own embedder (all-MiniLM-L6-v2); the
generations, rewrites and their evaluations go through the Batch API. Recorded: API
files, batches, requests, any request run twice, the rows written (each exactly once),
the process's peak memory and the wall time.

    python -m bench batch-api
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
from pathlib import Path

import numpy as np

from bench.batch import _PEAK
from bench.engine import Row
from bench.vectors import sample_vectors
from embed2prompt.testing import OpenAITestServer, ServerConfig

_TOKENS_PER_ROW = 100  # the first stage's input tokens a row: 3 generations of ~34


async def batch_api() -> list[Row]:
    rows = int(os.environ.get("EMBED2PROMPT_BENCH_BATCH_API_ROWS", "100000"))
    queue = rows * _TOKENS_PER_ROW // 4
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "vectors.npy", Path(folder) / "prompts.jsonl"
        np.save(source, sample_vectors(rows))
        config = ServerConfig(batch_queue_tokens=queue, batch_delay_s=1.0)
        with OpenAITestServer(config) as server:
            env = {
                **os.environ,
                "OPENAI_API_KEY": "sk-bench",
                "EMBED2PROMPT_BATCH_QUEUE_TOKENS": str(queue),
                "EMBED2PROMPT_BATCH_POLL_INITIAL_S": "0.2",
                "EMBED2PROMPT_BATCH_POLL_MAX_S": "2",
            }
            command = [
                sys.executable, "-c", _PEAK, sys.executable, "-m", "embed2prompt", "invert",
                str(source), "-o", str(output), "--batch-api", "--evaluate", "--variants", "3",
                "--generator", "openai", "--base-url", server.url, "--steps", "0",
                "--no-progress",
            ]  # fmt: skip
            started = time.perf_counter()
            answer = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, env=env, check=False
            )
            seconds = time.perf_counter() - started
            stats = server.stats(arrivals=False)["batch"]
        code, peak_kb = answer.stdout.split()[-2:]
        indices = [json.loads(line)["index"] for line in output.read_text().splitlines()]
    once = sorted(indices) == list(range(rows))
    twice = len(stats["custom_ids_submitted_twice"]) + len(stats["filenames_uploaded_twice"])
    name = f"invert --batch-api, {rows:,} rows, --evaluate --variants 3, --steps 0"
    return [
        Row(
            f"{name}: rows written",
            f"{len(indices):,}, each once: {'yes' if once else 'NO'} (exit {code})",
            "every row exactly once",
            once and code == "0",
        ),
        Row(
            f"{name}: API files, batches, requests (queue limit {queue:,} tokens)",
            f"{stats['files_uploaded']} files, {stats['batches_created']} batches, "
            f"{stats['requests_submitted']:,} requests, {twice} run twice",
            "several submissions, nothing twice",
            stats["batches_created"] > 5 and twice == 0,
        ),
        Row(
            f"{name}: peak memory, wall time",
            f"{int(peak_kb) / 1024:.0f} MiB, {seconds / 60:.1f} min",
            "-",
            None,
        ),
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"batch-api": batch_api}

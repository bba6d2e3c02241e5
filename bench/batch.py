"""Batch runs' benchmark (issue 7): does ``embed2prompt invert`` run in flat memory?

A file of N embeddings whose output already holds all but the last 64 rows: the run
reads all N input rows, reads back the N - 64 records (the resume), and inverts the 64
left through the real pipeline. Peak memory of the whole process for N = 20,000 and
N = 1,000,000 side by side: flat means the same, whatever N.

    python -m bench batch-memory
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from bench.engine import Row
from embed2prompt.inversion.model_paths import SMALL_MODEL

_DIMENSION = 384
_LEFT = 64  # rows the run inverts; the rest are resumed
_SIZES = (20_000, 1_000_000)
# Runs the command and prints its peak resident memory (kB): a wrapper process per run,
# so that each figure is that run's own.
_PEAK = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    """An .npy of ``rows`` random vectors and an output with all but the last 64 done."""
    source, output = folder / f"vectors-{rows}.npy", folder / f"prompts-{rows}.jsonl"
    array = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(rows, _DIMENSION))
    rng = np.random.default_rng(0)
    for first in range(0, rows, 65_536):
        block = array[first : first + 65_536]
        block[:] = rng.normal(size=block.shape)
    array.flush()
    del array
    with output.open("w") as handle:
        for index in range(rows - _LEFT):
            record = {
                "index": index, "id": str(index), "prompt": "an earlier run's prompt",
                "prompt_similarity": 0.5, "similarity": None, "best_variant": None,
                "success": True, "error": None, "processing_time": 0.1,
            }  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    return source, output


async def memory() -> list[Row]:
    figures: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for rows in _SIZES:
            source, output = _inputs(Path(folder), rows)
            command = [
                sys.executable, "-c", _PEAK, sys.executable, "-m", "embed2prompt",
                "invert", str(source), "-o", str(output), "--steps", "0", "--no-progress",
                "--inverter", str(SMALL_MODEL),  # as the tables in BENCHMARKS.md were measured
            ]  # fmt: skip
            started = time.perf_counter()
            answer = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, check=True
            )
            seconds = time.perf_counter() - started
            code, peak_kb = answer.stdout.split()
            lines = output.read_bytes().count(b"\n")
            if code != "0" or lines != rows:
                raise RuntimeError(f"the run failed: exit {code}, {lines} of {rows} rows")
            figures[rows] = (int(peak_kb) / 1024, seconds)
            source.unlink()
            output.unlink()
    small, large = (figures[rows] for rows in _SIZES)
    growth = large[0] / small[0]
    return [
        Row(
            f"batch run, peak memory: {_SIZES[0]:,} vs {_SIZES[1]:,} rows of {_DIMENSION} "
            f"(.npy in, .jsonl out, all but {_LEFT} resumed)",
            f"{small[0]:.0f} MiB vs {large[0]:.0f} MiB ({growth:.2f}x)",
            "flat (< 1.2x for 50x the rows)",
            growth < 1.2,
        ),
        Row(
            f"batch run, wall time of the same runs (read, resume, invert {_LEFT})",
            f"{small[1]:.1f} s vs {large[1]:.1f} s",
            "-",
            None,
        ),
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"batch-memory": memory}

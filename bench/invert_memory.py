"""Does ``embed2prompt invert`` run in flat memory as the rows grow (issue 17)?

For each size N, ``embed2prompt invert`` runs as a new process on N rows (real
all-MiniLM-L6-v2 embeddings of the sample prompts, :mod:`bench.vectors`) from a fresh
output, once in one pass (``--steps 0``) and once at the command's default refinement.
Each run's peak resident memory (of the process and any it starts, by a wrapper process
per run) and its rows a second (the command's own summary: its time inverting, without
loading the models) are printed, and the peak of each size against the smallest size's:
flat means the same peak whatever N.

Refinement runs about a row a second on 2 busy cores, so the sizes are options
(comma-separated row counts, environment variables):

- ``EMBED2PROMPT_BENCH_INVERT_ONE_PASS_ROWS`` (default 250,1000);
- ``EMBED2PROMPT_BENCH_INVERT_REFINED_ROWS`` (default 16,64: about 15 minutes in all on
  2 shared cores); the issue asks for 1,000 to 100,000 rows, e.g. ``1000,10000,100000``
  on a machine with hours to spare.

An empty value skips that mode.

    python -m bench invert-memory
    EMBED2PROMPT_BENCH_INVERT_REFINED_ROWS=1000,10000 python -m bench invert-memory
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

import numpy as np

from bench.engine import Row
from bench.vectors import sample_vectors
from embed2prompt.inversion.model_paths import SMALL_MODEL

_ONE_PASS_ROWS = "EMBED2PROMPT_BENCH_INVERT_ONE_PASS_ROWS"
_REFINED_ROWS = "EMBED2PROMPT_BENCH_INVERT_REFINED_ROWS"
_DEFAULT_ONE_PASS = "250,1000"
_DEFAULT_REFINED = "16,64"
_FLAT = 1.2  # the most the peak may grow from the smallest size to the largest
# Runs the command and prints its exit code and peak resident memory (kB), then the
# command's own output: a wrapper process per run, so that each peak is that run's own.
_PEAK = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "print(done.stdout, end='')"
)


@dataclass(frozen=True, slots=True)
class _Mode:
    label: str
    sizes_variable: str
    default_sizes: str
    options: tuple[str, ...]  # invert's options beyond input, output and --json


_MODES = (
    _Mode("one pass (--steps 0)", _ONE_PASS_ROWS, _DEFAULT_ONE_PASS, ("--steps", "0")),
    _Mode("default refinement", _REFINED_ROWS, _DEFAULT_REFINED, ()),
)


@dataclass(frozen=True, slots=True)
class _Measured:
    rows: int
    peak_mib: float
    rows_per_s: float
    wall_s: float


def _sizes(mode: _Mode) -> list[int]:
    """The mode's row counts, in increasing order; an unusable value is a clear error."""
    value = os.environ.get(mode.sizes_variable, mode.default_sizes).strip()
    try:
        sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(
            f"{mode.sizes_variable}={value!r}: expected row counts separated by commas"
        ) from None
    if any(size < 1 for size in sizes):
        raise SystemExit(f"{mode.sizes_variable}={value!r}: row counts must be at least 1")
    return sizes


def _run(folder: Path, rows: int, mode: _Mode) -> _Measured:
    source, output = folder / f"vectors-{rows}.npy", folder / f"prompts-{rows}.jsonl"
    np.save(source, sample_vectors(rows))
    command = [
        sys.executable, "-c", _PEAK, sys.executable, "-m", "embed2prompt", "invert",
        str(source), "-o", str(output), *mode.options, "--json", "--no-progress",
        "--inverter", str(SMALL_MODEL),  # as the tables in BENCHMARKS.md were measured
    ]  # fmt: skip
    started = time.perf_counter()
    answer = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    first, _, printed = answer.stdout.partition("\n")
    code, peak_kb = first.split()
    lines = output.read_bytes().count(b"\n")
    if code != "0" or lines != rows:
        raise RuntimeError(
            f"invert failed: exit {code}, {lines} of {rows} rows\n{answer.stderr[-2000:]}"
        )
    summary = json.loads(printed.strip().splitlines()[-1])
    source.unlink()
    output.unlink()
    return _Measured(rows, int(peak_kb) / 1024, rows / summary["processing_time"], wall)


async def invert_memory() -> list[Row]:
    table: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in _MODES:
            measured: list[_Measured] = []
            for rows in _sizes(mode):
                print(f"  invert, {mode.label}, {rows:,} rows ...", file=sys.stderr, flush=True)
                measured.append(await asyncio.to_thread(_run, Path(folder), rows, mode))
            table += _rows(mode, measured)
    return table


def _rows(mode: _Mode, measured: list[_Measured]) -> list[Row]:
    if not measured:
        return []
    smallest = measured[0]
    table = [
        Row(
            f"invert, {mode.label}: {run.rows:,} rows of 384 (.npy in, .jsonl out)",
            f"peak {run.peak_mib:.0f} MiB ({run.peak_mib / smallest.peak_mib:.2f}x "
            f"{smallest.rows:,} rows'); {run.rows_per_s:.1f} rows/s; wall {run.wall_s:.0f} s",
            "-",
            None,
        )
        for run in measured
    ]
    if len(measured) > 1:
        largest = measured[-1]
        growth = largest.peak_mib / smallest.peak_mib
        table.append(
            Row(
                f"invert, {mode.label}: peak memory, {smallest.rows:,} vs {largest.rows:,} rows",
                f"{smallest.peak_mib:.0f} MiB vs {largest.peak_mib:.0f} MiB ({growth:.2f}x)",
                f"flat (< {_FLAT}x for {largest.rows // smallest.rows}x the rows)",
                growth < _FLAT,
            )
        )
    return table


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"invert-memory": invert_memory}

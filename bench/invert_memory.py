"""Does ``embed2prompt invert`` run in flat memory as the rows grow (issue 17)?

For each mode, ``embed2prompt invert`` runs once, as a new process, on as many rows as the
largest size asks (real all-MiniLM-L6-v2 embeddings of the sample prompts,
:mod:`bench.vectors`) from a fresh output: once in one pass (``--steps 0``) and once at
the command's default refinement. While it runs, the bench reads the process's peak
resident memory so far (Linux's high-water mark, ``VmHWM``, of it and any process it
starts) each time the output passes one of the sizes: the peak a run of that many rows
reaches, taken from one run instead of one run a size. The peak at each size is printed
against the smallest size's (flat means the same peak whatever N) with the rows a second
between sizes; each size is also printed as it passes, so a long run stopped early still
says how far its memory stayed flat.

Refinement runs about a row a second on 2 busy cores, so the sizes are options
(comma-separated row counts, environment variables):

- ``EMBED2PROMPT_BENCH_INVERT_ONE_PASS_ROWS`` (default 250,1000);
- ``EMBED2PROMPT_BENCH_INVERT_REFINED_ROWS`` (default 16,64: about 2 minutes on 2 idle
  cores); the issue asks for 1,000 to 100,000 rows, e.g. ``16,1000,10000,100000`` on a
  machine with a day to spare.

An empty value skips that mode.

    python -m bench invert-memory
    EMBED2PROMPT_BENCH_INVERT_REFINED_ROWS=16,1000,10000 python -m bench invert-memory
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
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
_POLL_S = 0.2  # how often the output's rows and the memory peak are read


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
class Milestone:
    """The run as its output passed ``rows`` rows: its peak memory so far, and when."""

    rows: int
    peak_mib: float
    elapsed_s: float


def sizes(variable: str, default: str) -> list[int]:
    """The row counts in ``variable``, in increasing order; an unusable value is a clear
    error."""
    value = os.environ.get(variable, default).strip()
    try:
        counts = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"{variable}={value!r}: expected row counts separated by commas") from None
    if any(count < 1 for count in counts):
        raise SystemExit(f"{variable}={value!r}: row counts must be at least 1")
    return counts


def peak_kib(pid: int) -> int:
    """The largest high-water mark of resident memory among ``pid`` and its descendants
    alive now (0 for a process that has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return 0
    own = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
    )
    return max([own, *(peak_kib(child) for child in children)])


def watch(
    command: Sequence[str],
    output: Path,
    milestones: Sequence[int],
    on_pass: Callable[[Milestone], None],
) -> tuple[list[Milestone], str]:
    """Run ``command``, which writes one line of ``output`` a row, and read its peak memory
    each time the lines pass one of ``milestones`` (increasing): those readings, and what
    the command printed. The command must exit 0 having written the last milestone's rows."""
    with tempfile.TemporaryFile("w+") as printed, tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=printed, stderr=errors, text=True)
        reached: list[Milestone] = []
        lines, offset, peak = 0, 0, 0
        while process.returncode is None:
            peak = max(peak, peak_kib(process.pid))
            # Reaped here rather than by Popen: wait4 also gives the exited process's own
            # peak, which /proc no longer has.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                peak = max(peak, usage.ru_maxrss)
            if output.is_file():
                with output.open("rb") as written:
                    written.seek(offset)
                    grown = written.read()
                offset += len(grown)
                lines += grown.count(b"\n")
            while len(reached) < len(milestones) and lines >= milestones[len(reached)]:
                elapsed = time.perf_counter() - started
                reached.append(Milestone(milestones[len(reached)], peak / 1024, elapsed))
                on_pass(reached[-1])
            if process.returncode is None:
                time.sleep(_POLL_S)
        errors.seek(0)
        printed.seek(0)
        if process.returncode != 0 or len(reached) < len(milestones):
            raise RuntimeError(
                f"{' '.join(command[1:4])} failed: exit {process.returncode}, {lines} of "
                f"{milestones[-1]} rows\n{errors.read()[-2000:]}"
            )
        return reached, printed.read()


def _run(folder: Path, mode: _Mode, milestones: list[int]) -> tuple[list[Milestone], float]:
    """One ``invert`` run of the largest size: the peaks at each size, and the command's
    own rows a second (its time inverting, without loading the models)."""
    rows = milestones[-1]
    source, output = folder / f"vectors-{rows}.npy", folder / f"prompts-{rows}.jsonl"
    np.save(source, sample_vectors(rows))
    command = [
        sys.executable, "-m", "embed2prompt", "invert",
        str(source), "-o", str(output), *mode.options, "--json", "--no-progress",
        "--inverter", str(SMALL_MODEL),  # as the tables in BENCHMARKS.md were measured
    ]  # fmt: skip

    def say(passed: Milestone) -> None:
        print(
            f"  invert, {mode.label}: {passed.rows:,} rows, peak {passed.peak_mib:.0f} MiB, "
            f"{passed.elapsed_s:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    try:
        reached, printed = watch(command, output, milestones, say)
    finally:
        source.unlink()
        output.unlink(missing_ok=True)
    summary = json.loads(printed.strip().splitlines()[-1])
    return reached, rows / summary["processing_time"]


async def invert_memory() -> list[Row]:
    table: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in _MODES:
            milestones = sizes(mode.sizes_variable, mode.default_sizes)
            if not milestones:
                continue
            print(f"  invert, {mode.label}, {milestones[-1]:,} rows ...", file=sys.stderr)
            reached, rate = await asyncio.to_thread(_run, Path(folder), mode, milestones)
            table += rows(mode.label, reached, rate)
    return table


def rows(label: str, reached: list[Milestone], rows_per_s: float) -> list[Row]:
    """The table of one run: each size's peak against the smallest's, the rows a second
    from one size to the next, and whether the peak stayed flat."""
    smallest, largest = reached[0], reached[-1]
    table = []
    for earlier, passed in zip([None, *reached], reached, strict=False):
        if earlier is None:
            pace = f"{passed.elapsed_s:.0f} s from the start (loading the models included)"
        else:
            rate = (passed.rows - earlier.rows) / max(passed.elapsed_s - earlier.elapsed_s, 1e-9)
            pace = f"{rate:.1f} rows/s since {earlier.rows:,}"
        table.append(
            Row(
                f"invert, {label}: {passed.rows:,} rows of 384 (.npy in, .jsonl out)",
                f"peak {passed.peak_mib:.0f} MiB ({passed.peak_mib / smallest.peak_mib:.2f}x "
                f"{smallest.rows:,} rows'); {pace}",
                "-",
                None,
            )
        )
    if len(reached) > 1:
        growth = largest.peak_mib / smallest.peak_mib
        table.append(
            Row(
                f"invert, {label}: peak memory, {smallest.rows:,} vs {largest.rows:,} rows "
                f"(one run; {rows_per_s:.1f} rows/s in all)",
                f"{smallest.peak_mib:.0f} MiB vs {largest.peak_mib:.0f} MiB ({growth:.2f}x)",
                f"flat (< {_FLAT}x for {largest.rows // smallest.rows}x the rows)",
                growth < _FLAT,
            )
        )
    return table


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"invert-memory": invert_memory}

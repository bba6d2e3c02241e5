"""How long does ``make demo`` take once installed (issue 16: under 60 s)?

Runs ``embed2prompt demo`` (what ``make demo`` runs once its setup has nothing to do) as
a new process several times, one after the other, and prints the median wall time from
start to exit (models loaded included), each run's in order, and what the last run
printed: the mean similarity of the generations and of the best of prompt and variants,
and how many printed prompts end as a sentence or a question does.

Runs (default 3) is an option: ``EMBED2PROMPT_BENCH_DEMO_RUNS``. Run it alone on idle
cores: anything else running shares them, and a demo started right after another long
job has measured several seconds slower (BENCHMARKS.md).

    python -m bench demo
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from bench.engine import Row

_RUNS = "EMBED2PROMPT_BENCH_DEMO_RUNS"
_TARGET_S = 60.0
_GENERATIONS = re.compile(r"similarity of generations\s+mean ([0-9.]+)")
_BEST = re.compile(r"best of prompt and variants \(mean\)\s+([0-9.]+)")
_PROMPT = re.compile(r"^    prompt: ['\"](.*)['\"]$", flags=re.MULTILINE)


def _runs() -> int:
    value = os.environ.get(_RUNS, "3").strip()
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{_RUNS}={value!r}: expected a whole number of runs, at least 1")
    return int(value)


def _run_demo() -> tuple[float, str]:
    """One ``embed2prompt demo`` from start to exit: its wall seconds and what it printed.
    ``python -m embed2prompt`` exits as the installed executable does."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "embed2prompt", "demo"], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"embed2prompt demo failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return wall, done.stdout


async def demo() -> list[Row]:
    walls, printed = [], ""
    for run in range(1, _runs() + 1):
        print(f"  embed2prompt demo, run {run} ...", file=sys.stderr, flush=True)
        wall, printed = await asyncio.to_thread(_run_demo)
        walls.append(wall)
    generations, best = _GENERATIONS.search(printed), _BEST.search(printed)
    if generations is None or best is None:
        raise RuntimeError(f"the demo printed no summary:\n{printed[-2000:]}")
    prompts = _PROMPT.findall(printed)
    sentences = sum(prompt.endswith(("?", ".")) for prompt in prompts)
    median = statistics.median(walls)
    return [
        Row(
            f"`make demo` once installed (embed2prompt demo), wall to exit, {len(walls)} runs",
            f"median {median:.1f} s (in order: {', '.join(f'{wall:.1f}' for wall in walls)} s); "
            f"generations {generations[1]}, best of prompt and variants {best[1]}; "
            f"{sentences} of {len(prompts)} prompts end as a sentence or question",
            f"< {_TARGET_S:.0f} s",
            median < _TARGET_S,
        )
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {"demo": demo}

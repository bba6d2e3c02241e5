"""Scale-out benchmarks (issue 8): the inverter on Ray against the single-process engine,
what that predicts for N machines, and one rate limit shared by 4 processes via Redis.

    python -m bench ray-throughput shared-limit
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from bench.engine import Row
from bench.vectors import sample_vectors
from embed2prompt.batch.output import ResultLog
from embed2prompt.inversion.model_paths import SMALL_MODEL
from embed2prompt.testing import OpenAITestServer, ServerConfig, free_port

_ROWS = 384


async def _invert(source: Path, output: Path, *engine: str) -> float:
    """Wall seconds of ``embed2prompt invert`` (one pass, no evaluation)."""
    command = [
        sys.executable, "-m", "embed2prompt", "invert", str(source), "-o", str(output),
        "--steps", "0", "--no-progress", "--json", *engine,
        "--inverter", str(SMALL_MODEL),  # as the tables in BENCHMARKS.md were measured
    ]  # fmt: skip
    started = time.perf_counter()
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"invert failed: {done.stderr[-2000:]}")
    return seconds


def _driver_write_rate() -> float:
    """Records a second the driver can parse and write (the ceiling of one driver)."""
    record = {
        "index": 0, "id": "0", "prompt": "a recovered prompt of a dozen words or so, typical",
        "prompt_similarity": 0.81, "similarity": 0.7, "best_variant": None, "success": True,
        "error": None, "processing_time": 0.2,
    }  # fmt: skip
    count = 50_000
    with tempfile.TemporaryDirectory() as folder:
        output = ResultLog(Path(folder) / "out.jsonl", count)
        output.resume()
        line = json.dumps(record)
        started = time.perf_counter()
        for index in range(count):
            parsed = json.loads(line)
            parsed["index"] = index
            output.write(parsed)
        output.close()
        return count / (time.perf_counter() - started)


async def ray_throughput() -> list[Row]:
    rows = sample_vectors(_ROWS)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        np.save(base / "one.npy", rows[:1])
        np.save(base / "many.npy", rows)
        figures: dict[str, tuple[float, float]] = {}
        for name, engine in (("single process", ()), ("Ray, 2 actors", ("--engine", "ray"))):
            startup = await _invert(base / "one.npy", base / f"{name}-one.jsonl", *engine)
            wall = await _invert(base / "many.npy", base / f"{name}-many.jsonl", *engine)
            figures[name] = (wall, _ROWS / max(wall - startup, 1e-9))
    single, ray = figures["single process"], figures["Ray, 2 actors"]
    write_rate = _driver_write_rate()
    machine = ray[1]
    predictions = ", ".join(
        f"{n} machines {min(n * machine, write_rate):,.0f}/s" for n in (1, 4, 16, 64)
    )
    return [
        Row(
            f"inverter throughput, {_ROWS} rows, one pass: single process vs Ray (2 CPUs)",
            f"{single[1]:.1f} vs {ray[1]:.1f} rows/s ({ray[1] / single[1]:.2f}x); wall "
            f"{single[0]:.0f} s vs {ray[0]:.0f} s with start-up",
            "-",
            None,
        ),
        Row(
            "scaling model: min(N x one machine's Ray rate, the driver's write rate "
            f"{write_rate:,.0f} records/s)",
            predictions,
            "-",
            None,
        ),
    ]


async def shared_limit() -> list[Row]:
    """4 processes, one limit of 600 RPM in Redis, 60 s, against a server enforcing 600
    RPM over a 10 s window."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port, seconds, rpm = free_port(), 60.0, 600
    redis = subprocess.Popen(  # noqa: ASYNC220 (started once, before the workers)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.5)  # redis-server listens within milliseconds
        config = ServerConfig(rpm=rpm, limit_window_s=10, api_key="sk-bench")
        with OpenAITestServer(config) as server:
            command = [
                sys.executable, "-m", "embed2prompt.testing.limit_worker",
                "--redis", f"redis://127.0.0.1:{port}/0", "--name", uuid.uuid4().hex,
                "--rpm", str(rpm), "--base-url", server.url, "--api-key", "sk-bench",
                "--seconds", str(seconds),
            ]  # fmt: skip
            workers = [
                await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
                for _ in range(4)
            ]
            outputs = [await worker.communicate() for worker in workers]
            arrivals = server.stats()["arrivals"]
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    reports = [json.loads(stdout) for stdout, _ in outputs]
    limit_429s = sum(arrival["outcome"] == "429_limit" for arrival in arrivals)
    first = arrivals[0]["t"]
    in_window = [a for a in arrivals if a["t"] - first < seconds]
    fraction = len(in_window) / (rpm * seconds / 60)
    shares = "/".join(str(report["ok"]) for report in reports)
    return [
        Row(
            f"4 processes share {rpm} RPM through Redis, {seconds:.0f} s (server window 10 s)",
            f"{limit_429s} limit 429s; {len(in_window)} requests = {fraction:.1%} of the "
            f"limit (per process {shares})",
            "0 429s, >= 90%",
            limit_429s == 0 and fraction >= 0.9,
        )
    ]


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {
    "ray-throughput": ray_throughput,
    "shared-limit": shared_limit,
}

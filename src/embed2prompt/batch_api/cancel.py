"""Cancelling a Batch API run: its batches stopped at the server, what they did kept.

:func:`cancel_run` is ``invert ... --batch-api --cancel`` and, in a task of the service's
(:mod:`embed2prompt.service.jobs`), ``DELETE /jobs/{id}`` of a job in ``"mode":
"batch"``. It cancels every batch of the run still in the server's
queue (``batches.cancel``) and withdraws the uploads not submitted yet
(:meth:`~embed2prompt.batch_api.files.FileSteps.cancel`), then waits, up to ``wait_s``,
for the server to stop the batches (OpenAI may take minutes), downloading and joining
what each finished before it stopped and deleting the run's files there (unless
``batch_keep_files``). All of it is recorded in the run's state file, so calling it
again finishes what a shorter wait left, and running the same ``invert`` command again
resumes the run, sending only the requests no batch answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embed2prompt.batch_api.files import FileSteps, poll_pauses
from embed2prompt.batch_api.state import RunState
from embed2prompt.errors import InputError, TransientError
from embed2prompt.settings import Settings

UNSENT = "written"  # a file only on this disk: nothing at the server to stop or delete


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What a cancel did: the batches it cancelled, and how many input files are still
    at the server (batches it is still stopping, files it could not delete yet)."""

    batches: list[str]
    still_at_server: int


async def cancel_run(
    folder: Path,
    settings: Settings,
    *,
    wait_s: float,
    say: Callable[[str], None] = lambda _: None,
) -> Cancelled:
    """Cancel the run whose state is in ``folder`` (see the module's docstring)."""
    path = folder / "state.sqlite3"
    if not path.is_file():
        raise InputError(f"{folder}: no Batch API run here yet")
    state = RunState(path)
    files = FileSteps(state, folder, settings, say)
    try:
        cancelled = await files.cancel()
        deadline = time.monotonic() + wait_s
        pauses = poll_pauses(settings)
        while True:
            moved = False
            for file in state.files(unfinished_only=True):
                if file.step == UNSENT:
                    continue
                try:
                    moved |= await files.advance(file)
                except TransientError as error:
                    say(f"file {file.name}: {error}; trying again shortly")
            left = await files.clean()
            waiting = [f for f in state.files(unfinished_only=True) if f.step != UNSENT]
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:  # files it could not delete: the next call
                return Cancelled(cancelled, len(waiting) + left)
            if moved:
                pauses = poll_pauses(settings)
                continue
            await asyncio.sleep(min(next(pauses), remaining))
    finally:
        await files.aclose()
        state.close()

"""Ctrl-C and SIGTERM during a long run: the first stops it gracefully, the second at once.

The first signal sets an event (start nothing new; finish and write what is in
progress) and says so; the second cancels the task that runs the work, which then ends
with what it has written. Either way the output holds only whole records, and running
the same command again finishes the rest.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def graceful_stop(in_progress: str, say: Callable[[str], None]) -> Iterator[asyncio.Event]:
    """The event a first Ctrl-C or SIGTERM sets, for the current task's work; ``say``
    prints that the ``in_progress`` (``"rows"``, ``"texts"``) are being finished."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def interrupted() -> None:
        if not stop.is_set():
            stop.set()
            say(f"stopping: finishing the {in_progress} in progress (Ctrl-C again to stop at once)")
        elif task is not None:
            task.cancel()

    for number in SIGNALS:
        loop.add_signal_handler(number, interrupted)
    try:
        yield stop
    finally:
        for number in SIGNALS:
            loop.remove_signal_handler(number)

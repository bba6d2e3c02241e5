"""How an inversion run over a file ends: its summary on stdout and its exit code.

``invert`` and ``invert --batch-api`` end the same way: a table (or one JSON object)
summing the rows up, and when the run stopped early, the command that finishes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embed2prompt.cli import INTERRUPTED

if TYPE_CHECKING:  # imports torch: at run time only, not for --help
    from embed2prompt.batch.run import BatchOutcome


def report_outcome(
    output_path: Path, outcome: BatchOutcome | None, *, as_json: bool, command: str
) -> int:
    """Print the run's summary, or how to resume it; the exit code: 0 every row
    succeeded, 1 some failed, 130 stopped early (``outcome`` ``None``: stopped at once,
    with no summary). ``command`` is the command line that finishes the run."""
    if outcome is None:
        print(_stopped_message(output_path, None, command), file=sys.stderr)
        return INTERRUPTED
    summary = outcome.summary.model_dump(mode="json", exclude_none=True)
    if as_json:
        print(json.dumps({**summary, "rows": outcome.rows_total, "output": str(output_path)}))
    else:
        print(_summary_table(summary, outcome))
    if not outcome.complete:
        print(_stopped_message(output_path, outcome, command), file=sys.stderr)
        return INTERRUPTED
    return 1 if outcome.summary.failed else 0


def _stopped_message(output_path: Path, outcome: BatchOutcome | None, command: str) -> str:
    """What a stopped run has written and the command that finishes it."""
    done = (
        f"{outcome.resumed + outcome.written} of {outcome.rows_total} rows are in {output_path}"
        if outcome is not None
        else f"the rows finished so far are in {output_path}"
    )
    return f"stopped: {done}; to finish the rest, run the same command again:\n  {command}"


def _summary_table(summary: dict[str, Any], outcome: BatchOutcome) -> str:
    labels = {
        "total_processed": "rows processed",
        "successful": "successful",
        "failed": "failed",
        "processing_time": "this run's time (s)",
        "average_similarity": "average similarity (generation)",
        "max_similarity": "max similarity",
        "min_similarity": "min similarity",
        "average_prompt_similarity": "average prompt similarity",
        "average_best_similarity": "average best similarity (with variants)",
        "average_variant_gain": "average variant gain",
    }
    lines = [(labels[key], value) for key, value in summary.items() if key in labels]
    lines.insert(1, ("of which earlier runs", outcome.resumed))
    if outcome.summary.processing_time > 0:
        rate = outcome.written / outcome.summary.processing_time
        lines.insert(5, ("rows per second (this run)", rate))
    width = max(len(label) for label, _ in lines)
    rule = "-" * (width + 14)
    body = [
        f"{label:<{width}}  {value:>12.4f}"
        if isinstance(value, float)
        else f"{label:<{width}}  {value:>12}"
        for label, value in lines
    ]
    return "\n".join([rule, *body, rule])

"""Where a Batch API run stands, read from its state file alone (no model, no network)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from embed2prompt.batch_api.stages import stage_name
from embed2prompt.batch_api.state import RunState
from embed2prompt.errors import InputError


def state_folder(output: Path) -> Path:
    """The folder beside ``output`` that holds its Batch API run."""
    return output.with_name(output.name + ".batch-api")


def status_report(folder: Path) -> dict[str, Any]:
    """Rows inverted and final, requests of each stage by status, when the run was
    cancelled (if it was), and each input file: its step, batch id, the batch's last
    status and request counts, and whether its files at the API have been deleted."""
    path = folder / "state.sqlite3"
    if not path.is_file():
        raise InputError(f"{folder}: no Batch API run here yet")
    state = RunState(path)
    try:
        db = state.db
        rows, final = db.execute("SELECT COUNT(*), COALESCE(SUM(final), 0) FROM rows").fetchone()
        options = state.get("options") or {}
        stages = []
        for (stage,) in db.execute("SELECT DISTINCT stage FROM requests ORDER BY stage"):
            stages.append({"stage": stage_name(stage), "requests": state.request_counts(stage)})
        files = [
            {
                "file": f.name,
                "stage": stage_name(f.stage),
                "requests": f.requests,
                "input_tokens": f.tokens,
                "step": f.step,
                "batch": f.batch_id,
                "status": f.status,
                "counts": f.counts,
                "error": f.error,
                "deleted": f.cleaned,
            }
            for f in state.files()
        ]
        return {
            "rows": options.get("rows", rows),
            "inverted": int(rows),
            "final": int(final),
            "cancelled_at": state.get("cancelled_at"),
            "stages": stages,
            "files": files,
        }
    finally:
        state.close()


def status_table(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    lines = [
        f"rows: {report['rows']:,}, inverted {report['inverted']:,}, finished {report['final']:,}"
    ]
    if report["cancelled_at"] is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report["cancelled_at"]))
        lines.append(f"cancelled at {when}; run the same command again to resume")
    for stage in report["stages"]:
        counts = ", ".join(f"{n:,} {status}" for status, n in sorted(stage["requests"].items()))
        lines.append(f"stage {stage['stage']}: {counts}")
    if report["files"]:
        lines.append("files:")
    for file in report["files"]:
        tally: dict[str, int] = file["counts"] or {}
        done = f" {tally.get('completed', 0)}/{tally.get('total', 0)} done" if tally else ""
        failed = f", {tally['failed']} failed" if tally.get("failed") else ""
        batch = f" {file['batch']} {file['status']}{done}{failed}" if file["batch"] else ""
        error = f" ({file['error']})" if file["error"] else ""
        deleted = ", files deleted at the API" if file["deleted"] else ""
        lines.append(
            f"  {file['file']}  {file['stage']:<18} {file['requests']:>7,} requests  "
            f"{file['step']:<10}{batch}{error}{deleted}"
        )
    return "\n".join(lines)

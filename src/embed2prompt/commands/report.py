"""``embed2prompt report``: an HTML report of a results file written by ``invert``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help="an HTML report of a results file",
        description=(
            "Draw a self-contained HTML page (opens offline) from the output of invert:\n"
            "similarity histogram, prompt versus generation similarity, variant gains,\n"
            "time per row, failures, and the best and worst prompts.\n\n"
            "example:\n"
            "  embed2prompt report prompts.jsonl -o report.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", type=Path, help="a .jsonl or .parquet file written by invert")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .html file to write")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from embed2prompt.batch.report import write_report

    summary = write_report(args.results, args.output)
    print(
        f"wrote {args.output}: {summary['total_processed']} rows, {summary['failed']} failed",
        file=sys.stderr,
    )
    return 0

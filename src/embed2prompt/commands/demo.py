"""``embed2prompt demo``: the main job, or the rate-limited engine, on the embedded defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embed2prompt.inversion.model_paths import DEFAULT_MODEL, SMALL_MODEL


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the main job on the embedded defaults (no API key, no network)",
        description=(
            "Run the main job offline: embed ten sample texts with the local embedder, turn\n"
            "the embeddings back into prompts, judge each by what the local LLM writes from\n"
            "it, refine variants, and print the table and summary.\n\n"
            "example:\n  embed2prompt demo\n  embed2prompt demo --inverter models/small_model.pt\n"
            "  embed2prompt demo --engine"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--inverter",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="the inverter's checkpoint (default: EMBED2PROMPT_MODEL_PATH, else "
        f"{DEFAULT_MODEL}, the fluent inverter; {SMALL_MODEL}: the small decoder, faster)",
    )
    parser.add_argument(
        "--engine",
        action="store_true",
        help="instead, show the rate-limited engine against a local OpenAI-compatible server",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.engine and args.inverter is not None:
        print(
            "embed2prompt demo: --inverter is for the main job; --engine inverts nothing",
            file=sys.stderr,
        )
        return 2
    if args.engine:
        from embed2prompt.demos.engine import run_engine_demo

        run_engine_demo()
    else:
        from embed2prompt.demos.main_job import run_demo

        run_demo(model_path=args.inverter)
    return 0

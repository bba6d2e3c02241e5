"""``embed2prompt demo``: the main job, or the rate-limited engine, on the embedded defaults."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the main job on the embedded defaults (no API key, no network)",
        description=(
            "Run the main job offline: embed ten sample texts with the local embedder, turn\n"
            "the embeddings back into prompts, judge each by what the local LLM writes from\n"
            "it, refine variants, and print the table and summary.\n\n"
            "example:\n  embed2prompt demo\n  embed2prompt demo --fluent\n"
            "  embed2prompt demo --engine"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--fluent",
        action="store_true",
        help="invert with the fluent inverter (models/fluent_model.pt) and its own search",
    )
    parser.add_argument(
        "--engine",
        action="store_true",
        help="instead, show the rate-limited engine against a local OpenAI-compatible server",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.engine:
        from embed2prompt.engine_demo import run_engine_demo

        run_engine_demo()
    else:
        from embed2prompt.demo import run_demo

        run_demo(fluent=args.fluent)
    return 0

"""The ``embed2prompt`` command line: thin over the library."""

from __future__ import annotations

import argparse
import sys

from embed2prompt.errors import Embed2PromptError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embed2prompt",
        description="Turn embedding vectors back into text prompts, fast and at scale.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run the main job on the embedded defaults (no API key, no network)",
        description="Run the demo offline.\n\nexample:\n  embed2prompt demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    try:
        if args.command == "demo":
            from embed2prompt.demo import run_demo

            run_demo()
        return 0
    except Embed2PromptError as error:
        if args.debug:
            raise
        print(f"embed2prompt: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embed2prompt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

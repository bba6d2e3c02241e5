"""``embed2prompt serve``: the HTTP service."""

from __future__ import annotations

import argparse

from embed2prompt.cli import _settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="start the HTTP service (the seed's API)",
        description=(
            "Start the HTTP service: POST /generate_prompts_parallel, GET /health, docs at\n"
            "/docs. Settings from the environment (EMBED2PROMPT_*, API_KEY, OPENAI_*).\n\n"
            "example:\n  API_KEY=secret embed2prompt serve --port 8000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from embed2prompt.service.server import serve

    serve(_settings(host=args.host, port=args.port))
    return 0

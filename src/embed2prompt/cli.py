"""The ``embed2prompt`` command line: thin over the library.

Each module of :mod:`embed2prompt.commands` adds its own subcommand and handler
(``register``); this module holds what they share: the top-level parser, argument types,
defaults as help shows them, settings from options, the resume hint, and the exit codes.
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any

import pydantic

from embed2prompt.errors import Embed2PromptError
from embed2prompt.redaction import hide_url_credentials
from embed2prompt.settings import Settings

# Exit codes: 0 success, 1 some items failed, 2 bad usage or input, and these two.
INTERNAL_ERROR = 3
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings(**given)


def _default(setting: str) -> str:
    """What the run uses when an option is not given: the setting's environment variable,
    else its default, read from :class:`Settings` (the one place it is declared)."""
    value = Settings.model_fields[setting].default
    shown = value.value if isinstance(value, Enum) else value
    if value is None:
        shown = "the model's own"
    return f"default: EMBED2PROMPT_{setting.upper()}, else {shown}"


def _command_line(argv: list[str]) -> str:
    """The command that runs ``embed2prompt ARGV`` again, for the resume hint; a
    credential in ``--base-url`` (user, password, query) is shown as ``***``."""
    shown: list[str] = []
    hide_next = False
    for argument in argv:
        name, equals, value = argument.partition("=")
        is_base_url = len(name) > 2 and "--base-url".startswith(name)  # argparse: --base too
        if hide_next:
            argument, hide_next = hide_url_credentials(argument), False
        elif is_base_url and equals:
            argument = f"{name}={hide_url_credentials(value)}"
        elif is_base_url:
            hide_next = True
        shown.append(argument)
    return shlex.join(["embed2prompt", *shown])


def _whole_number(value: str, *, least: int) -> int:
    """``value`` as an int of at least ``least``, or argparse's usage error saying so."""
    if not value.strip().lstrip("-").isdigit() or int(value) < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {value!r}")
    return int(value)


def _at_least_zero(value: str) -> int:
    return _whole_number(value, least=0)


def _at_least_one(value: str) -> int:
    return _whole_number(value, least=1)


def _build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: each command module imports this module's helpers.
    from embed2prompt.commands import (
        align,
        bank,
        corpus,
        demo,
        embed,
        evaluate,
        invert,
        report,
        serve,
        train,
    )

    parser = argparse.ArgumentParser(
        prog="embed2prompt",
        description="Turn embedding vectors back into text prompts, fast and at scale.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each module adds its subcommand and sets its handler; this order is --help's.
    for command in (demo, serve, embed, corpus, bank, align, train, invert, report, evaluate):
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names with its module's handler; the exit code."""
    args = _build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # handlers' resume hint: _command_line
    if args.debug:
        import logging

        from embed2prompt import redaction

        logging.basicConfig(level=logging.DEBUG)
        # Debug logs quote URLs and request options: never the settings' credentials.
        redaction.install(redaction.secrets_of_environment())
    handler: Callable[[argparse.Namespace], int] = args.handler  # set by register
    try:
        return handler(args)
    except Embed2PromptError as error:
        if args.debug:
            raise
        print(f"embed2prompt: error: {error}", file=sys.stderr)
        return 2
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        print(f"embed2prompt: error: invalid settings: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embed2prompt: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # a bug or an environment problem: one line, not a traceback
        if args.debug:
            raise
        print(
            f"embed2prompt: internal error: {type(error).__name__}: {error} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def console() -> int:
    """The ``embed2prompt`` executable: :func:`main`, then a fast exit.

    A command that loaded the models leaves hundreds of thousands of their objects alive
    to the end; the interpreter's last garbage collection would walk them all (over a
    second of ``make demo``). Freezing them first skips that walk: the process is ending,
    and the operating system frees its memory. What is frozen is never finalised, so a
    command closes or flushes whatever must be (files, models, servers) itself, as they
    all do. Not in :func:`main`, which a long-lived caller may run many times."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())

"""The jobs behind the command line, one module a command, callable from Python too.

Each module's ``register(subparsers)`` adds its subcommand and sets ``handler``, which
:func:`embed2prompt.cli.main` calls with the parsed arguments and returns as the exit
code. Every module is imported to build the parser, so torch and the other heavy
libraries are imported inside the functions that use them: ``embed2prompt --help``
loads no model library.
"""

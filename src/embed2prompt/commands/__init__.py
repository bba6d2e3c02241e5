"""The jobs behind the command line, one module a command, callable from Python too."""

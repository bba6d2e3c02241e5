"""The specification's import paths (``from scripts.async_processing import ...``).

Thin re-exports of the ``embed2prompt`` package, so code written against the original
system's README runs unchanged from the repository root.
"""

"""Benchmarks. Run ``make bench`` (or ``python -m bench``) to print the table."""

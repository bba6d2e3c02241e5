"""The training text of the inversion model: sources shipped as Debian packages, plus
synthetic prompts, cleaned, deduplicated and split without leakage.

    sources   where each kind of text comes from and how it is extracted
    build     fetch, extract, filter, deduplicate, split, write
"""

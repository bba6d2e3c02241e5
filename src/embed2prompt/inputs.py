"""Checks of what users hand us, with errors that name the bad item and what was expected."""

from __future__ import annotations

from collections.abc import Sequence

from embed2prompt.errors import InputError


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or an :class:`InputError` naming the first bad one."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise InputError("texts is empty; expected at least one string to embed")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{index}] is {type(text).__name__}; expected a string")
        if not text.strip():
            raise InputError(f"texts[{index}] is empty; expected non-blank text")
    return list(texts)

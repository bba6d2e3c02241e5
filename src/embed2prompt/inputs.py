"""Checks of what users hand us, with errors that name the bad item and what was expected.

Every layer (library, pipeline, batch runs, service) checks texts and embeddings here,
so that the same mistake reads the same wherever it is made. Embeddings written as JSON
(a ``.jsonl`` file of ``embed2prompt invert``, the service's JSON-lines upload) are read
by :func:`read_json` and :func:`json_vector`: the one rule of what a JSON value must be
to count as an embedding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import InputError

# What a wrong dimension most often means: vectors of another embedder.
ALIGN_HINT = (
    "vectors of another embedder can be inverted through an aligner fitted on paired texts "
    "(see `embed2prompt align --help`)"
)


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


def check_embeddings(
    raw: object, dimension: int, *, first_index: int = 0, expected: str | None = None
) -> npt.NDArray[np.float32]:
    """(n, d) unit rows, or an :class:`InputError` naming the row and the problem.

    ``first_index`` is the index of ``raw``'s first row in the caller's numbering (a
    chunk of a streamed upload), so that errors name the row the caller knows; one
    vector (a 1-D ``raw``) is "the embedding". ``expected`` says who expects
    ``dimension`` (an aligner); by default the model.
    """
    # Without an aligner, a wrong dimension most often means another embedder's vectors.
    expected = expected or f"this model inverts {dimension}-dimensional embeddings; {ALIGN_HINT}"
    if isinstance(raw, list | tuple) and raw and isinstance(raw[0], list | tuple | np.ndarray):
        _check_rows(raw, dimension, first_index, expected)  # name the row that is not numbers
    array = _real_numbers(raw, "embeddings must be numbers (a vector or a list of vectors)")
    if array.size == 0:
        raise InputError("embeddings are empty; expected a non-empty list of vectors")
    one_vector = array.ndim == 1
    if one_vector:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InputError(
            f"embeddings must be a vector or a non-empty list of vectors, got shape {array.shape}"
        )
    if array.shape[1] != dimension:
        raise InputError(f"embeddings have dimension {array.shape[1]}, but {expected}")
    if one_vector:
        return _unit_rows(array, lambda _: "the embedding")
    return _unit_rows(array, lambda index: f"embedding {first_index + index}")


def check_paired_embeddings(raw: object, side: str) -> npt.NDArray[np.float32]:
    """(n, d) unit rows of any width ``d``: one ``side`` ("foreign", "target") of the
    paired vectors an aligner is fitted on, or an :class:`InputError` naming the row."""
    array = _real_numbers(raw, f"the {side} embeddings must be an (n, d) array of numbers")
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(f"the {side} embeddings must be an (n, d) array, got {array.shape}")
    return _unit_rows(array, lambda index: f"{side} embedding {index}")


def _unit_rows(
    array: npt.NDArray[np.float64], name_of: Callable[[int], str]
) -> npt.NDArray[np.float32]:
    """The rows of ``array`` scaled to unit length, after checking each value; errors
    call row ``i`` ``name_of(i)``."""
    for index, row in enumerate(array):
        row_name = name_of(index)
        if not np.isfinite(row).all():
            raise InputError(f"{row_name} contains NaN or infinite values")
        if not np.any(row):
            raise InputError(f"{row_name} is all zeros; it has no direction to invert")
        _check_values(row, row_name)
    # Each row divided by its largest magnitude first: the same direction, and a length
    # that can neither overflow (values up to 3.4e38) nor underflow (values near 1e-300).
    scaled = array / np.abs(array).max(axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    return unit.astype(np.float32)


# The values an embedding may hold: 0, or a normal float64 within float32's range. No
# embedding model writes a denormal (subnormal) number or one beyond float32, and both
# are how a caller's bug looks (uninitialised memory, a wrong unit).
SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)  # 2.2250738585072014e-308
LARGEST = float(np.finfo(np.float32).max)  # 3.4028234663852886e38


def _check_values(row: npt.NDArray[np.float64], name: str) -> None:
    magnitude = np.abs(row)
    denormal = (magnitude > 0) & (magnitude < SMALLEST_NORMAL)
    if denormal.any():
        raise InputError(
            f"{name} contains a denormal number ({magnitude[denormal].min():.3g}, "
            f"smaller in magnitude than {SMALLEST_NORMAL:.3g}); send 0 or a normal float"
        )
    if (largest := magnitude.max()) > LARGEST:
        raise InputError(
            f"{name} contains {largest:.3g}, beyond float32's range (at most "
            f"{LARGEST:.3g} in magnitude); no embedding holds such a value"
        )


def _check_rows(
    rows: list[object] | tuple[object, ...], dimension: int, first_index: int, expected: str
) -> None:
    for index, row in enumerate(rows, start=first_index):
        vector = _real_numbers(row, f"embedding {index} is not a list of numbers")
        if vector.ndim != 1 or vector.shape[0] != dimension:
            raise InputError(f"embedding {index} has shape {vector.shape}, but {expected}")


# NumPy's kinds of real numbers (signed and unsigned integers, floats), and how to name
# the others: NumPy would read "0.1" as 0.1 and True as 1, and drop an imaginary part.
REAL_KINDS = "iuf"
_KIND_WORDS = {"b": "booleans", "c": "complex numbers", "U": "text", "S": "bytes"}


def _real_numbers(raw: object, refusal: str) -> npt.NDArray[np.float64]:
    """``raw`` as float64, or an :class:`InputError` starting with ``refusal``."""
    try:
        array = np.asarray(raw)
        if array.dtype.kind == "O":  # Python objects: integers past int64, None, a mix
            array = np.asarray(raw, dtype=np.float64)
    except OverflowError:  # an integer of 309 digits or more
        raise InputError(
            f"{refusal}: it holds an integer too large for a float (at most {LARGEST:.3g} "
            "in magnitude)"
        ) from None
    except (TypeError, ValueError):  # ragged, or text among Python objects
        raise InputError(refusal) from None
    if array.dtype.kind not in REAL_KINDS:
        held = _KIND_WORDS.get(array.dtype.kind, "values that are not numbers")
        raise InputError(
            f"{refusal}: it holds {held} (dtype {array.dtype}); expected real numbers "
            "(floats or integers)"
        )
    return array.astype(np.float64, copy=False)


# Embeddings written as JSON ---------------------------------------------------------
_JSON_NUMBERS = 'expected JSON numbers (not "0.1", not true)'


def read_json(text: bytes, name: str, expected: str) -> object:
    """``text`` parsed as JSON that holds embeddings, or an :class:`InputError` saying
    why ``name`` cannot be read and that ``expected`` was.

    Integers are read as floats: one too long for a float is then infinite, as ``1e400``
    is, and refused as such by :func:`check_embeddings` (as Python ints, one of 4,300
    digits or more stops ``json.loads`` and one of 309 overflows NumPy's conversion).
    """
    try:
        return json.loads(text, parse_int=float)
    except json.JSONDecodeError as error:
        raise InputError(f"{name} is not valid JSON ({error.msg}); expected {expected}") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not valid JSON (not UTF-8); expected {expected}") from None
    except RecursionError:  # arrays in arrays past the parser's depth
        raise InputError(f"{name} is nested too deeply; expected {expected}") from None


def json_vector(value: object, name: str) -> list[float]:
    """``value`` (as :func:`read_json` parsed it) as an embedding: a JSON array of JSON
    numbers, as in the service's JSON bodies; ``"0.1"`` and ``true`` are refused, not
    read as numbers. Its dimension and values are :func:`check_embeddings`' to check."""
    if not isinstance(value, list):
        raise InputError(
            f"{name} is not a list of numbers: it is {_json_kind(value)}; expected an array "
            "of JSON numbers"
        )
    if set(map(type, value)) - {float}:
        position, item = next((p, item) for p, item in enumerate(value) if type(item) is not float)
        raise InputError(
            f"{name} is not a list of numbers: item {position} is {_json_kind(item)}; "
            f"{_JSON_NUMBERS}"
        )
    return value


def _json_kind(value: object) -> str:
    """What a parsed JSON value was written as, in JSON's words."""
    if value is None:
        return "null"
    kinds = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    return kinds.get(type(value), "a number")

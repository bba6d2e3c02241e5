"""What counts as an embedding: one rule, kept by every reader (issue 19).

A JSON line of ``embed2prompt invert``'s ``.jsonl`` and of the service's JSON-lines
upload are read by the same two functions of :mod:`embed2prompt.inputs`, so the same
line gets the same verdict in both; files and arrays of anything but real numbers are
refused with their dtype named.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embed2prompt.batch.readers import EmbeddingFile
from embed2prompt.errors import InputError
from embed2prompt.inputs import check_embeddings
from embed2prompt.service.uploads import JSON_LINES, NPY_FILE, PARQUET_FILE, read_vectors

GOOD = [0.5, -0.25, 1.0]


def _upload_error(body: bytes, encoding: str = JSON_LINES) -> str | None:
    """The upload's refusal of ``body`` (3-dimensional rows), or None if it passes."""

    async def upload() -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield body

        async for _ in read_vectors(chunks(), encoding, 3, 100):
            pass

    try:
        asyncio.run(upload())
    except InputError as error:
        return str(error)
    return None


def _cli_row(tmp_path: Path, embedding: str) -> tuple[Any, str | None]:
    """The CLI reader's second row (its vector, checked as ``invert`` checks it, or
    its error) of a ``.jsonl`` file whose second line holds ``embedding``."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"embedding": GOOD}) + '\n{"embedding": ' + embedding + "}\n")
    row = list(EmbeddingFile(path).rows())[1]
    if row.error is not None:
        return None, row.error
    try:
        return check_embeddings(row.vector, 3), None
    except InputError as error:
        return None, str(error)


@pytest.mark.parametrize(
    ("embedding", "verdict"),
    [
        # Integers too long for a float are infinite, as 1e400 is: not an OverflowError
        # (309 digits and more) nor int()'s ValueError (4,300 and more) that lose the run.
        ("[1" + "0" * 400 + ", 1, 1]", "contains NaN or infinite values"),
        ("[" + "9" * 5000 + ", 1, 1]", "contains NaN or infinite values"),
        ("[1e400, 1, 1]", "contains NaN or infinite values"),
        # Strict: neither text nor booleans pass as numbers.
        ('["0.1", "0.2", "0.3"]', "is not a list of numbers: item 0 is a string; expected JSON"),
        ("[1, true, 1]", "is not a list of numbers: item 1 is a boolean"),
        ("[1, 1, null]", "is not a list of numbers: item 2 is null"),
        ("[[1], 1, 1]", "is not a list of numbers: item 0 is an array"),
        ("3", "is not a list of numbers: it is a number; expected an array of JSON numbers"),
        ('"1, 2, 3"', "is not a list of numbers: it is a string"),
        # Integers that fit are numbers.
        ("[1, -2, 3]", None),
    ],
)
def test_a_json_embedding_gets_the_same_verdict_from_the_cli_and_the_upload(
    tmp_path: Path, embedding: str, verdict: str | None
) -> None:
    vector, cli_error = _cli_row(tmp_path, embedding)
    upload_error = _upload_error(f"{json.dumps(GOOD)}\n{embedding}\n".encode())
    if verdict is None:
        assert cli_error is None, cli_error
        assert upload_error is None, upload_error
        assert vector.shape == (1, 3)
        return
    assert cli_error is not None
    assert verdict in cli_error, cli_error
    assert upload_error is not None
    assert verdict in upload_error, upload_error
    if "NaN" not in verdict:  # the reader's own errors name the line, as the upload's do
        assert cli_error.startswith("line 2: the embedding ")
        assert upload_error.startswith("line 2: embedding 1 ")


def test_a_jsonl_line_that_cannot_be_read_is_that_rows_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    nested = '{"id": "deep", "embedding": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_bytes(
        b'{"id": "a", "embedding": [1, 2, 3]}\n' + nested.encode() + b"\n\xff\xfe\n{oops\n"
    )
    rows = list(EmbeddingFile(path).rows())
    assert [row.error for row in rows] == [
        None,
        "line 2 is nested too deeply; expected an object with an 'embedding' field",
        "line 3 is not valid JSON (not UTF-8); expected an object with an 'embedding' field",
        "line 4 is not valid JSON (Expecting property name enclosed in double quotes); "
        "expected an object with an 'embedding' field",
    ]
    assert rows[0].vector == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([10**400, 1, 1], "it holds an integer too large for a float"),
        (["0.1", "0.2", "0.3"], "it holds text (dtype <U3); expected real numbers"),
        ([True, False, True], "it holds booleans (dtype bool)"),
        (np.ones(3, dtype=np.complex64), "it holds complex numbers (dtype complex64)"),
        (np.ones((2, 3), dtype=np.complex128), "it holds complex numbers (dtype complex128)"),
        ([GOOD, np.ones(3, dtype=np.complex64)], "embedding 1 is not a list of numbers: it holds"),
        ([GOOD, ["a", "b", "c"]], "embedding 1 is not a list of numbers: it holds text"),
        ("not numbers", "embeddings must be numbers"),
    ],
)
def test_check_embeddings_takes_real_numbers_only(raw: object, message: str) -> None:
    """NumPy would read "0.1" as 0.1 and True as 1, drop an imaginary part, and
    overflow on a Python int of 309 digits (an OverflowError, not an InputError)."""
    with pytest.raises(InputError) as refused:
        check_embeddings(raw, 3)
    assert message in str(refused.value)


def test_check_embeddings_takes_integers_and_floats_of_any_width() -> None:
    for raw in ([1, 2, 2], np.array([1, 2, 2], dtype=np.uint8), np.array([[1, 2, 2]], "<f2")):
        unit = check_embeddings(raw, 3)
        assert np.allclose(unit, [[1 / 3, 2 / 3, 2 / 3]])


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _parquet(column: pa.Array) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"embedding": column}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("suffix", "body", "message"),
    [
        (".npy", _npy(np.ones((2, 3), np.complex64)), "got dtype complex64"),
        (".npy", _npy(np.ones((2, 3), np.complex128)), "got dtype complex128"),
        (".npy", _npy(np.ones((2, 3), bool)), "got dtype bool"),
        (".npy", _npy(np.ones((2, 3), "m8[s]")), "got dtype timedelta64[s]"),
        (".parquet", _parquet(pa.array([["0.1"] * 3])), "holds list<element: string>"),
        (".parquet", _parquet(pa.array([[True] * 3])), "holds list<element: bool>"),
        (".parquet", _parquet(pa.array(["0.1, 0.2, 0.3"])), "holds string"),
        (".parquet", _parquet(pa.array([[[0.1] * 3]])), "holds list<element: list<element"),
    ],
)
def test_a_file_of_anything_but_real_numbers_is_refused_naming_its_type(
    tmp_path: Path, suffix: str, body: bytes, message: str
) -> None:
    """Both ``embed2prompt invert`` (the file) and the service (its upload) refuse it."""
    path = tmp_path / f"vectors{suffix}"
    path.write_bytes(body)
    with pytest.raises(InputError) as refused:
        EmbeddingFile(path)
    assert message in str(refused.value)
    assert "expected" in str(refused.value)
    assert "real numbers" in str(refused.value)
    upload_error = _upload_error(body, NPY_FILE if suffix == ".npy" else PARQUET_FILE)
    assert upload_error is not None
    assert upload_error.startswith("the upload: ")
    assert message in upload_error


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        (".npy", _npy(np.array([[1, 2, 2]], np.int16))),
        (".npy", _npy(np.array([[1, 2, 2]], np.float16))),
        (".parquet", _parquet(pa.array([[1, 2, 2]], pa.list_(pa.int64())))),
        (".parquet", _parquet(pa.array([[1, 2, 2]], pa.large_list(pa.float32())))),
        (".parquet", _parquet(pa.array([[1, 2, 2]], pa.list_(pa.float64(), 3)))),
    ],
)
def test_files_of_integers_and_floats_of_any_width_are_read(
    tmp_path: Path, suffix: str, body: bytes
) -> None:
    path = tmp_path / f"vectors{suffix}"
    path.write_bytes(body)
    (row,) = EmbeddingFile(path).rows()
    assert np.allclose(check_embeddings(row.vector, 3), [[1 / 3, 2 / 3, 2 / 3]])
    assert _upload_error(body, NPY_FILE if suffix == ".npy" else PARQUET_FILE) is None

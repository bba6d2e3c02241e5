"""Streamed job uploads: embeddings parsed and checked as the body arrives.

A job of 100,000 embeddings is 0.4-0.8 GB as one JSON document, more than a request
body should be and several GB once parsed into Python lists. ``POST /jobs/upload``
takes the embeddings as a stream instead, in one of these encodings:

- JSON lines (``application/x-ndjson``): one embedding a line, a JSON array of numbers
  or an object with an ``embedding`` field (other fields are ignored); blank lines
  are skipped. The values must be JSON numbers, as in the JSON bodies (``"0.1"`` and
  ``true`` are refused, not coerced).
- float32 rows (``application/octet-stream``): little-endian float32, row after row,
  each of the model's dimension (``array.astype("<f4").tobytes()`` in NumPy).
- a ``.npy`` file (``application/x-npy``) or a ``.parquet`` file
  (``application/vnd.apache.parquet``, a list column ``embedding``), as they are: the
  files ``embed2prompt invert`` reads. Their header or footer says how to read the rest,
  so the body is spooled to a temporary file first, then read as the command reads it.

Rows are checked (dimension, NaN, infinities, zero vectors, denormals, values beyond
float32's range) a chunk at a time, and each error names the embedding's index and, for JSON
lines, the line (``line 7: embedding 5 contains NaN or infinite values``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.batch.readers import EmbeddingFile, Row
from embed2prompt.errors import InputError
from embed2prompt.inputs import json_vector, read_json
from embed2prompt.service.security import Message, Receive
from embed2prompt.service.vectors import check_vectors

JSON_LINES = "application/x-ndjson"
FLOAT32_ROWS = "application/octet-stream"
NPY_FILE = "application/x-npy"
PARQUET_FILE = "application/vnd.apache.parquet"  # IANA-registered in 2024
# Whole files, spooled before they are read, and the suffix their reader goes by.
FILE_SUFFIXES = {NPY_FILE: ".npy", PARQUET_FILE: ".parquet"}
# Media types that clients use for JSON lines besides the registered-looking one.
JSON_LINES_ALIASES = {JSON_LINES, "application/jsonl", "application/x-jsonlines"}
PARQUET_ALIASES = {PARQUET_FILE, "application/x-parquet"}
UNSUPPORTED = (
    "send the embeddings as application/x-ndjson (one JSON array a line), "
    "application/octet-stream (little-endian float32 rows), application/x-npy (a .npy "
    "file) or application/vnd.apache.parquet (a .parquet file with an 'embedding' column)"
)
ROWS_PER_CHUNK = 1024  # rows checked and stored at a time
MAX_LINE_BYTES = 16 * 1024 * 1024  # a 4,096-dimensional row is about 100 kB of JSON

# The upload's request body in the OpenAPI schema (the route reads the raw stream).
OPENAPI_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The embeddings: JSON lines, little-endian float32 rows, a .npy "
        "file or a .parquet file.",
        "content": {
            # The embeddings, written one a line (what OpenAPI 3.1 cannot say of a body):
            # the schema's items come from the loaded model (service.openapi).
            JSON_LINES: {"schema": {"type": "array", "minItems": 1}},
            FLOAT32_ROWS: {"schema": {"type": "string", "format": "binary"}},
            NPY_FILE: {"schema": {"type": "string", "format": "binary"}},
            PARQUET_FILE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def upload_encoding(content_type: str | None) -> str | None:
    """The encoding a Content-Type header names (``JSON_LINES``, ``FLOAT32_ROWS``,
    ``NPY_FILE`` or ``PARQUET_FILE``), or ``None``."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in JSON_LINES_ALIASES:
        return JSON_LINES
    if media_type in PARQUET_ALIASES:
        return PARQUET_FILE
    if media_type in (FLOAT32_ROWS, NPY_FILE):
        return media_type
    return None


class RequestBody:
    """The request body's chunks straight from the ASGI ``receive`` (nothing buffered),
    and whether it has all been read, so that an upload refused half-way can drain the
    rest (a client still sending would not read the error otherwise)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.finished:
            try:
                message: Message = await self._receive()
            except BaseException:
                self.finished = True  # cancelled: nothing more will be read
                raise
            if message["type"] != "http.request":
                self.finished = True  # the client went away, or the size guard answered 413
                raise InputError("the client disconnected before the upload was complete")
            self.finished = not message.get("more_body", False)
            body: bytes = message.get("body", b"")
            if body:
                yield body

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass


async def read_vectors(
    chunks: AsyncIterator[bytes], encoding: str, dimension: int, max_rows: int
) -> AsyncIterator[npt.NDArray[np.float32]]:
    """Checked unit rows, up to ``ROWS_PER_CHUNK`` at a time, in upload order."""
    rows: AsyncIterator[tuple[Any, int | None]]
    if encoding == JSON_LINES:
        rows = _json_lines(chunks)
    elif encoding == FLOAT32_ROWS:
        rows = _float32_rows(chunks, dimension)
    else:
        rows = _file_rows(chunks, FILE_SUFFIXES[encoding], max_rows)
    batch: list[Any] = []
    lines: list[int | None] = []  # each row's line in the upload (JSON lines)
    first_index = 0

    def checked() -> npt.NDArray[np.float32]:
        if first_index + len(batch) > max_rows:
            raise InputError(
                f"the upload holds more than {max_rows} embeddings (max_embeddings_per_job)"
            )
        try:
            return check_vectors(batch, dimension, first_index=first_index)
        except InputError as error:
            raise _naming_the_line(error, batch, lines, dimension, first_index) from None

    async for row, line in rows:
        batch.append(row)
        lines.append(line)
        if len(batch) == ROWS_PER_CHUNK:
            yield checked()
            first_index += len(batch)
            batch, lines = [], []
    if batch:
        yield checked()
    elif first_index == 0:
        raise InputError("the upload holds no embeddings; expected at least one")


def _naming_the_line(
    error: InputError, batch: list[Any], lines: list[int | None], dimension: int, first_index: int
) -> InputError:
    """``error`` (about one row of ``batch``) with that row's line in front, found by
    checking the rows one by one (only when the batch failed: rarely, and once)."""
    for offset, (row, line) in enumerate(zip(batch, lines, strict=True)):
        if line is None:
            break
        try:
            check_vectors([row], dimension, first_index=first_index + offset)
        except InputError as alone:
            return InputError(f"line {line}: {alone}")
    return error


async def _json_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[Any, int]]:
    """Each line's embedding (unchecked) and the line's number."""
    # The unfinished line grows in place and only the bytes just received are searched
    # for a newline: a long line sent in small chunks costs linear time, not quadratic.
    pending = bytearray()
    line_number = 0
    index = 0
    async for chunk in chunks:
        searched = len(pending)
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", max(start, searched))) >= 0:
            line_number += 1
            line = bytes(pending[start:end])
            start = end + 1
            if line.strip():
                yield _row(line, line_number, index), line_number
                index += 1
        del pending[:start]
        if len(pending) > MAX_LINE_BYTES:
            raise InputError(f"line {line_number + 1} is longer than 16 MiB")
    if bytes(pending).strip():
        yield _row(bytes(pending), line_number + 1, index), line_number + 1


def _row(line: bytes, line_number: int, index: int) -> list[float]:
    """One line's embedding: an array of JSON numbers, or an object whose ``embedding``
    field is one (the rule of :func:`~embed2prompt.inputs.json_vector`)."""
    value = read_json(
        line,
        f"line {line_number} (embedding {index})",
        'an array of numbers or an object with an "embedding" field',
    )
    if isinstance(value, dict):
        if "embedding" not in value:
            raise InputError(f'line {line_number} (embedding {index}) has no "embedding" field')
        value = value["embedding"]
    return json_vector(value, f"line {line_number}: embedding {index}")


async def _float32_rows(
    chunks: AsyncIterator[bytes], dimension: int
) -> AsyncIterator[tuple[npt.NDArray[np.float32], None]]:
    """Each row, and no line (the encoding has none)."""
    row_bytes = 4 * dimension
    pending = b""
    async for chunk in chunks:
        pending += chunk
        whole = len(pending) // row_bytes * row_bytes
        if whole:
            for row in np.frombuffer(pending[:whole], dtype="<f4").reshape(-1, dimension):
                yield row, None
            pending = pending[whole:]
    if pending:
        raise InputError(
            f"the upload ends with {len(pending)} bytes that are not a whole row; expected "
            f"little-endian float32 rows of {dimension} values ({row_bytes} bytes each)"
        )


async def _file_rows(
    chunks: AsyncIterator[bytes], suffix: str, max_rows: int
) -> AsyncIterator[tuple[Any, None]]:
    """Each row of a whole ``.npy`` or ``.parquet`` file, and no line: the body spooled
    to a temporary file (deleted after), then read as ``embed2prompt invert`` reads it."""
    with tempfile.TemporaryDirectory(prefix="embed2prompt-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as spool:
            async for chunk in chunks:
                await asyncio.to_thread(spool.write, chunk)
        file = await asyncio.to_thread(EmbeddingFile, path, name="the upload")
        if file.rows_total > max_rows:
            raise InputError(
                f"the upload holds {file.rows_total} embeddings; at most {max_rows} "
                "(max_embeddings_per_job)"
            )
        rows = file.rows()
        while batch := await asyncio.to_thread(_take, rows, ROWS_PER_CHUNK):
            for row in batch:
                if row.error is not None:
                    raise InputError(f"embedding {row.index}: {row.error}")
                yield row.vector, None


def _take(rows: Any, count: int) -> list[Row]:
    return list(islice(rows, count))

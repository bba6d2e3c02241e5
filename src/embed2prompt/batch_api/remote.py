"""The Files and Batches calls, through the official SDK, each made at most once.

An upload or a batch creation cut short (a kill, a timeout, a dropped connection) may
have happened on the server without its answer reaching us. Such a call is never simply
repeated: the caller flags it first (:mod:`~embed2prompt.batch_api.state`), and before
trying again asks :meth:`BatchService.find_upload` / :meth:`BatchService.find_batch`
whether the server has it (by the upload's unique file name, by the batch's input
file). So the SDK's own retries are off for the calls that create something; reads
(a batch's status, a file's content) are retried by the SDK.

Errors: a request the server refuses for good (401, 403, 400, 404) is an
:class:`ApiError` that stops the run; anything else (a timeout, 429, 5xx, a dropped
connection) is a :class:`TransientError`, and the run tries the step again later. The
API key never appears in either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
from openai.types import Batch

from embed2prompt.errors import ApiError, TransientError
from embed2prompt.openai_api.client import create_sdk, describe_api_error, known_secrets
from embed2prompt.redaction import hide_credentials
from embed2prompt.settings import Settings

TRANSFER_TIMEOUT_S = 900.0  # an upload or download of up to 200 MB
_PERMANENT = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.BadRequestError,
    openai.NotFoundError,
    openai.UnprocessableEntityError,
)


class BatchService:
    """Files and batches on an OpenAI-compatible API (``settings``' key and base URL)."""

    def __init__(self, settings: Settings) -> None:
        self._secrets = known_secrets(settings)
        # Creating is never repeated blindly (see the module's docstring); reading is.
        self._creating = create_sdk(settings, max_retries=0)
        self._reading = create_sdk(settings, max_retries=3)

    async def aclose(self) -> None:
        await self._creating.close()
        await self._reading.close()

    async def upload(self, path: Path, name: str) -> str:
        """Upload an input file (purpose ``batch``) under ``name``; its file id."""
        with self._errors(), path.open("rb") as handle:
            created = await self._creating.files.create(
                file=(name, handle, "application/jsonl"),
                purpose="batch",
                timeout=TRANSFER_TIMEOUT_S,
            )
        return created.id

    async def find_upload(self, name: str, size: int) -> str | None:
        """The id of an uploaded batch input file called ``name`` of ``size`` bytes."""
        with self._errors():
            async for file in self._reading.files.list(purpose="batch"):
                if file.filename == name and file.bytes == size:
                    return file.id
        return None

    async def create_batch(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> Batch:
        with self._errors():
            return await self._creating.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=metadata,
            )

    async def find_batch(self, file_id: str, since: float) -> Batch | None:
        """The batch created from ``file_id``, looked for among those created since
        ``since`` (seconds since the epoch; batches are listed newest first)."""
        with self._errors():
            async for batch in self._reading.batches.list(limit=100):
                if batch.input_file_id == file_id:
                    return batch
                if batch.created_at < since - 60:
                    break
        return None

    async def retrieve(self, batch_id: str) -> Batch:
        with self._errors():
            return await self._reading.batches.retrieve(batch_id)

    async def cancel(self, batch_id: str) -> Batch:
        """Ask the server to stop a batch (it goes ``cancelling``, then ``cancelled``
        with the requests it finished in its output file); the batch as it stands. A
        batch that has ended meanwhile is answered as it is, not as an error."""
        try:
            with self._errors():
                return await self._reading.batches.cancel(batch_id)
        except ApiError as error:
            if error.status != 400:  # 400: a batch that has ended cannot be cancelled
                raise
        return await self.retrieve(batch_id)

    async def delete(self, file_id: str) -> None:
        """Delete a file at the server; one that is gone already counts as deleted."""
        try:
            with self._errors():
                await self._reading.files.delete(file_id)
        except ApiError as error:
            if error.status != 404:
                raise

    async def download(self, file_id: str, path: Path) -> None:
        """A file's content to ``path``, whole or not at all (a temporary, renamed)."""
        partial = path.with_name(path.name + ".partial")
        with self._errors():
            async with self._reading.files.with_streaming_response.content(
                file_id, timeout=TRANSFER_TIMEOUT_S
            ) as response:
                with partial.open("wb") as handle:
                    async for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
        partial.replace(path)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _PERMANENT as error:
            raise ApiError(self._scrubbed(error), status=error.status_code) from None
        except openai.OpenAIError as error:
            raise TransientError(self._scrubbed(error)) from None

    def _scrubbed(self, error: Any) -> str:
        return hide_credentials(describe_api_error(error), self._secrets)

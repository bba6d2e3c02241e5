"""Embeddings of the corpus, computed once and kept on disk, so training resumes.

Texts are embedded in chunks; each finished chunk is saved as its own ``.npy`` file, so
an interrupted run (Ctrl-C, a crash, a rate-limited API that gave up) loses at most the
chunk in progress and the next run continues where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from embed2prompt.embedders.base import Embedder

CHUNK = 2048


def cache_folder(root: Path, embedder_name: str, texts: Sequence[str]) -> Path:
    """One folder per embedder and exact list of texts."""
    digest = hashlib.sha256()
    digest.update(embedder_name.encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\n")
    slug = embedder_name.replace("/", "_").replace(":", "_")
    return root / f"{slug}-{digest.hexdigest()[:12]}"


def embed_with_cache(
    embedder: Embedder, texts: Sequence[str], root: Path, *, progress: bool = True
) -> npt.NDArray[np.float32]:
    """``embedder``'s vectors of ``texts``, kept under ``root`` in the folder of that
    embedder and exact list of texts (:func:`cache_folder`)."""
    folder = cache_folder(root, embedder.name, texts)
    folder.mkdir(parents=True, exist_ok=True)
    chunks = range(0, len(texts), CHUNK)
    missing = [start for start in chunks if not (folder / f"{start:09d}.npy").is_file()]

    async def run() -> None:
        with tqdm(
            total=len(texts),
            initial=len(texts) - sum(min(CHUNK, len(texts) - start) for start in missing),
            unit="text",
            desc="embedding",
            disable=not progress,
        ) as bar:
            for start in missing:
                part = texts[start : start + CHUNK]
                vectors = await embedder.embed(part)
                partial = folder / f"{start:09d}.npy.partial"
                with partial.open("wb") as handle:
                    np.save(handle, vectors.astype(np.float32))
                partial.replace(folder / f"{start:09d}.npy")
                bar.update(len(part))

    if missing:
        asyncio.run(run())
    return np.concatenate([np.load(folder / f"{start:09d}.npy") for start in chunks])

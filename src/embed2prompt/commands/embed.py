"""``embed2prompt embed``: a file of texts in, a file of embeddings out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embed2prompt.backends import create_embedder
from embed2prompt.settings import Settings
from embed2prompt.textio import TextRecord, check_output_path, read_texts, write_embeddings

# Texts per embed() call: big enough for efficient batches and API requests, small
# enough that the progress bar moves.
CHUNK = 256
# Shorter inputs finish too fast for a progress bar to help.
PROGRESS_FROM = 1_000


def run_embed(input_path: Path, output_path: Path, *, settings: Settings, progress: bool) -> None:
    check_output_path(output_path)
    records = read_texts(input_path)
    asyncio.run(_embed_all(records, output_path, settings, progress))
    print(f"embedded {len(records)} texts into {output_path}", file=sys.stderr)


async def _embed_all(
    records: list[TextRecord], output_path: Path, settings: Settings, progress: bool
) -> None:
    embedder = create_embedder(settings)
    try:
        texts = [record.text for record in records]
        truncated = embedder.truncated(texts)
        parts = []
        show = progress and len(records) >= PROGRESS_FROM
        with tqdm(total=len(texts), unit="text", disable=not show, file=sys.stderr) as bar:
            for start in range(0, len(texts), CHUNK):
                chunk = texts[start : start + CHUNK]
                parts.append(await embedder.embed(chunk))
                bar.update(len(chunk))
        vectors = np.vstack(parts)
    finally:
        await embedder.aclose()
    write_embeddings(output_path, records, vectors, truncated)
    cut = sum(truncated)
    if cut:
        print(
            f"note: {cut} texts were longer than the model's window and were truncated",
            file=sys.stderr,
        )

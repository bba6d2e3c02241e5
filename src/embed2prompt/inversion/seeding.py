"""Seeds from vectors: a target's random choices are the same alone or in any batch."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt


def vector_seed(vector: npt.NDArray[np.floating], seed: int) -> int:
    """A 63-bit seed from a vector and a base seed. The vector is rounded first, so that
    the last bits a batched computation may change do not change the seed."""
    rounded = np.round(np.asarray(vector, dtype=np.float64) * 1e4).astype(np.int32)
    digest = hashlib.blake2b(rounded.tobytes(), digest_size=8, key=str(seed).encode())
    return int.from_bytes(digest.digest(), "little") >> 1

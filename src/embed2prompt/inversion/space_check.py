"""Vectors from the wrong space, caught: a warning when inputs do not look like the
inverter's embedder's.

Another 384-dimensional embedder's vectors (multilingual-e5-small's, bge-small's) pass
every shape check and are silently inverted as if they were all-MiniLM-L6-v2's. The
search's first pass tells them apart at no extra cost: its best first guess (the
inverter's own texts and the prompt bank's nearest) lands close to a vector of the
inverter's own embedder and nowhere near one of another space. Measured on 48 out-of-
domain and held-out texts with the small decoder: MiniLM's own vectors 0.455-0.805,
the same texts' e5 vectors 0.121-0.250 (query and passage), uniform random vectors
0.040-0.120; with the fluent inverter (the default): MiniLM's 0.455-1.0 (median 0.74),
e5's 0.127-0.285 (median 0.19), random 0.126-0.274. The threshold sits between, and
the median over a batch decides, so one odd target does not raise it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from embed2prompt.inversion.checkpoint import CheckpointInfo

FOREIGN_FIRST_PASS_COSINE = 0.35


def foreign_space_warning(first_cosines: Sequence[float], info: CheckpointInfo) -> str | None:
    """A warning naming the likely cause and the fix, when the median of the first
    pass's best cosines is below :data:`FOREIGN_FIRST_PASS_COSINE`; else ``None``."""
    if not first_cosines:
        return None
    median = statistics.median(first_cosines)
    if median >= FOREIGN_FIRST_PASS_COSINE:
        return None
    return (
        f"these vectors do not look like {info.embedder_name} embeddings: the inverter's "
        f"first guesses reach a median cosine of {median:.2f} (its own embedder's vectors "
        f"reach about 0.45 or more). They are likely another embedder's "
        f"{info.embedder_dimension}-dimensional vectors (for example multilingual-e5-small's), "
        "which invert to unrelated prompts. Fit an aligner for that embedder with "
        "`embed2prompt align` and invert through it (--aligner, EMBED2PROMPT_ALIGNER)."
    )

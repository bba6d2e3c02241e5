"""Where the shipped inverters are, and finding one from any folder.

Torch-free: the settings read :data:`DEFAULT_MODEL` as their default checkpoint.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path("models/best_model.pt")
# The fluent inverter: an adapter into the frozen SmolLM2 (prefix_lm.py). Its prompts read
# as English; the default's refine closer to their targets (BENCHMARKS.md).
FLUENT_MODEL = Path("models/fluent_model.pt")
# The repository's root, for an editable install used from another folder: the seed's
# relative path ``models/best_model.pt`` then still finds the shipped model.
_REPOSITORY = Path(__file__).resolve().parents[3]


def locate_model(path: str | Path) -> Path:
    """``path``, or for a relative path that is not here, the repository's copy of it."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (_REPOSITORY / path).exists():
        return _REPOSITORY / path
    return path

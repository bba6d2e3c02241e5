"""Where the shipped inverters are, finding one from any folder, and where what runs
derive from them is cached.

Torch-free: the settings read :data:`DEFAULT_MODEL` as their default checkpoint and
:func:`default_cache_dir` as their default cache folder.
"""

from __future__ import annotations

import os
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


CACHE_DIR_VARIABLE = "EMBED2PROMPT_CACHE_DIR"
# Its earlier name, still read: a folder chosen with it stays in use.
_OLD_CACHE_DIR_VARIABLE = "EMBED2PROMPT_CACHE"


def default_cache_dir() -> Path:
    """Where what is made once per machine is kept: packages' weights unpacked
    (:mod:`base_lm`) and the lexicon's embeddings by each embedder (:mod:`lexicon_cache`).
    ``EMBED2PROMPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/embed2prompt``, else
    ``~/.cache/embed2prompt``. Never the models folder: the repository's files do not
    change at run time."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE) or os.environ.get(_OLD_CACHE_DIR_VARIABLE)
    if chosen:
        return Path(chosen).expanduser()
    # The XDG specification ignores an empty or relative XDG_CACHE_HOME.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "embed2prompt"

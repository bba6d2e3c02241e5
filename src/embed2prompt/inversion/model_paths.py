"""Where the shipped inverters are, finding one from any folder, and where what runs
derive from them is cached.

Torch-free: the settings read :data:`DEFAULT_MODEL` as their default checkpoint and
:func:`default_cache_dir` as their default cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from embed2prompt.errors import ConfigurationError

# The fluent inverter: an adapter that conditions the frozen SmolLM2 on the embedding
# (prefix_lm.py). Its prompts read as English, closer to their texts' words than the
# small decoder's at about the same cosine (BENCHMARKS.md, "The default inverter").
DEFAULT_MODEL = Path("models/best_model.pt")
# The small decoder trained from scratch (model.py): word salad at high cosine, but
# about 4x faster to invert, and light enough for tests of what is around the inverter.
SMALL_MODEL = Path("models/small_model.pt")
# Shipped checkpoints that changed name, so an old path gets the new one named.
RENAMED_MODELS = {Path("models/fluent_model.pt"): DEFAULT_MODEL}
# The repository's root, for an editable install used from another folder: the seed's
# relative path ``models/best_model.pt`` then still finds the shipped model.
_REPOSITORY = Path(__file__).resolve().parents[3]


def locate_model(path: str | Path) -> Path:
    """``path``, or for a relative path that is not here, the repository's copy of it."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (_REPOSITORY / path).exists():
        return _REPOSITORY / path
    renamed = RENAMED_MODELS.get(Path(*path.parts[-2:]))
    if renamed is not None and not path.exists():
        raise ConfigurationError(
            f"{path} was renamed {renamed} when it became the default "
            f"inverter; the small decoder is now {SMALL_MODEL}"
        )
    return path


CACHE_DIR_VARIABLE = "EMBED2PROMPT_CACHE_DIR"
# Its earlier name, still read: a folder chosen with it stays in use.
_OLD_CACHE_DIR_VARIABLE = "EMBED2PROMPT_CACHE"


def default_cache_dir() -> Path:
    """Where what is made once per machine is kept: packages' weights unpacked
    (:mod:`base_lm`), the lexicon's embeddings by each embedder (:mod:`lexicon_cache`) and
    the Debian packages a corpus is built from (:mod:`embed2prompt.corpus.build`).
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

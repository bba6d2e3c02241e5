"""``embed2prompt train``: train an inverter for the chosen embedder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from embed2prompt.backends import create_embedder
from embed2prompt.inversion.training import TrainingOptions, train
from embed2prompt.settings import Settings


def run_train(options: TrainingOptions, *, settings: Settings, progress: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder = create_embedder(settings)
    path = train(options, embedder, progress=progress)
    print(f"checkpoint written to {path} (config {path.with_suffix('.json')})", file=sys.stderr)


def default_run_folder() -> Path:
    return Path("runs") / "inverter"

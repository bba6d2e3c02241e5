"""Saving and loading inverters safely: no pickled objects, only tensors and JSON.

A checkpoint is two files: ``NAME.pt``, a state dict of fp16 tensors that loads with
``torch.load(weights_only=True)``; and ``NAME.json``, the model config, the embedder the
model was trained for (name and dimension), the tokenizer (its JSON), and what it was
trained on, and its lexicon (the corpus's frequent words, which the training-free
refinement tries as edits). Training state (optimizer, step) goes in ``NAME.train.pt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.model import Inverter, InverterConfig

FORMAT_VERSION = 1


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides its weights."""

    embedder_name: str
    embedder_dimension: int
    training: dict[str, Any] = field(default_factory=dict)
    lexicon: list[str] = field(default_factory=list)
    # The refinement measured best for this model (keywords of invert_batch), used when
    # the caller leaves them out.
    search: dict[str, Any] = field(default_factory=dict)
    # The pretrained LM a fluent inverter addresses (prefix_checkpoint.py); None for the
    # small decoder, which carries its own weights.
    language_model: str | None = None


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(
    path: Path, model: Inverter, tokenizer: Tokenizer, info: CheckpointInfo
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {
        name: tensor.detach().to(torch.float16) for name, tensor in model.state_dict().items()
    }
    weights.pop("head.weight", None)  # tied to tokens.weight
    document = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "embedder": {"name": info.embedder_name, "dimension": info.embedder_dimension},
        "training": info.training,
        "lexicon": info.lexicon,
        "tokenizer": json.loads(tokenizer.to_str()),
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(weights, partial)
    sidecar_partial = sidecar(path).with_name(sidecar(path).name + ".partial")
    sidecar_partial.write_text(json.dumps(document))
    partial.replace(path)  # weights first: a config never points at missing weights
    sidecar_partial.replace(sidecar(path))


def load_checkpoint(path: Path) -> tuple[Inverter, Tokenizer, CheckpointInfo]:
    config_path = sidecar(path)
    if not path.is_file():
        raise ConfigurationError(f"no inverter checkpoint at {path}")
    if not config_path.is_file():
        raise ConfigurationError(f"{path} has no config beside it (expected {config_path})")
    try:
        document = json.loads(config_path.read_text())
        config = InverterConfig(**document["model"])
        tokenizer = Tokenizer.from_str(json.dumps(document["tokenizer"]))
        embedder = document["embedder"]
        info = CheckpointInfo(
            embedder["name"],
            int(embedder["dimension"]),
            document["training"],
            [str(word) for word in document.get("lexicon", [])],
            dict(document.get("search", {})),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"{config_path} is not a valid inverter config: {error}") from None
    weights = torch.load(path, map_location="cpu", weights_only=True)
    model = Inverter(config)
    state = {name: tensor.float() for name, tensor in weights.items()}
    state["head.weight"] = state["tokens.weight"]
    model.load_state_dict(state)
    model.eval()
    return model, tokenizer, info

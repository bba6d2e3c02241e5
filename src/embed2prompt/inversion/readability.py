"""Does a prompt read as English? An independent judge for the evaluation.

The inverter's own log-likelihood (the search's fluency weight) cannot judge the search's
prompts fairly, since the search may have optimised it. A language model that plays no
part in inversion can: SmolLM2-135M-Instruct (the embedded generator's weights, on
llama.cpp) scores each text by its mean token log-probability after a document boundary
(``<|endoftext|>``), so the first word counts too. Measured: "How do I bake sourdough
bread at home?" -3.5, the same words shuffled -8.4; "lead is a heavy metal" -5.7, the
search's "heavy metal are lead lead. is" -7.6.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.generators.local import packaged_gguf_path

_CONTEXT_TOKENS = 512  # texts are cut to this many tokens (prompts have at most 32 words)
_DOCUMENT_BOUNDARY = b"<|endoftext|>"


class ReadabilityJudge:
    """Mean token log-probability of texts under SmolLM2-135M: higher reads more like
    English. One text at a time on the CPU, about 0.1 s each on 2 cores."""

    def __init__(self, *, model_path: Path | None = None, threads: int | None = None) -> None:
        try:
            path = model_path or packaged_gguf_path()
        except ConfigurationError as error:
            raise ConfigurationError(
                f"{error}; the readability judge uses its weights (eval --no-readability "
                "skips the judge)"
            ) from None
        if not path.is_file():
            raise ConfigurationError(f"the readability judge's model file {path} is missing")
        from llama_cpp import Llama  # imported here: loading the native library takes time

        self._llama = Llama(
            model_path=str(path),
            n_ctx=_CONTEXT_TOKENS,
            n_threads=threads or os.cpu_count() or 1,
            logits_all=True,  # a log-probability for every token, not only the last
            verbose=False,
        )
        self._prefix = self._llama.tokenize(_DOCUMENT_BOUNDARY, add_bos=False, special=True)
        self._scores: dict[str, float] = {}

    def score(self, texts: Sequence[str]) -> list[float]:
        """Each text's mean log-probability a token (natural log). Scores are kept: an
        evaluation judges the same original texts at every step count."""
        for text in texts:
            if text not in self._scores:
                self._scores[text] = self._score(text)
        return [self._scores[text] for text in texts]

    def _score(self, text: str) -> float:
        own = self._llama.tokenize(text.strip().encode("utf-8"), add_bos=False)
        if not own:
            raise InputError("an empty text has no readability to judge")
        tokens = (self._prefix + own)[:_CONTEXT_TOKENS]
        self._llama.reset()  # type: ignore[no-untyped-call]
        self._llama.eval(tokens)
        # Row i holds the logits that predict token i + 1.
        logits = np.asarray(self._llama.scores[: len(tokens) - 1], dtype=np.float64)
        peak = logits.max(axis=1)
        log_partition = np.log(np.exp(logits - peak[:, None]).sum(axis=1)) + peak
        chosen = logits[np.arange(len(tokens) - 1), tokens[1:]]
        return float((chosen - log_partition).mean())

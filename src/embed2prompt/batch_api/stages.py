"""The pipeline's evaluation of a row, cut into stages of independent API requests.

The synchronous pipeline (:mod:`embed2prompt.pipeline.parallel` and
:mod:`~embed2prompt.pipeline.variants`) awaits each call in turn; a batch takes hours,
so here every request that does not depend on another's answer goes into the same
stage, and a row's evaluation is folded forward one stage at a time:

1. **generate** (chat): the text the generator writes from the prompt and, with
   variants, from each refinement runner-up (these are asked together with the
   original: a row whose original then fails has paid for its runners-up in vain);
2. **embed** (embeddings): those texts, for their cosines to the target;
3. for each rewrite ``n``: **rewrite** (chat: the rewrite template on the best prompt
   so far), **rewrite-evaluate** (chat: the generator's text from the new draft) and
   **rewrite-embed** (embeddings: the draft and that text).

The rules are the synchronous pipeline's (the same requests, seeds, counts of
refinements and rewrites, repeated drafts refused, best variant chosen by
:func:`~embed2prompt.pipeline.variants.best_of`), so a run against a deterministic
server writes the same rows as ``invert`` without ``--batch-api``. A row's state is
plain JSON (:class:`~embed2prompt.batch_api.state.RunState` keeps it); a stage's
requests are :class:`Planned`; their answers come back as
:class:`~embed2prompt.batch_api.state.RequestRecord`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from embed2prompt.backends import DEFAULT_OPENAI_CHAT_MODEL, DEFAULT_OPENAI_EMBEDDING_MODEL
from embed2prompt.batch_api.state import RequestRecord
from embed2prompt.embedders.base import normalise_rows
from embed2prompt.errors import (
    ApiError,
    BatchRequestError,
    EmptyGenerationError,
    NotAvailableError,
    RepeatedRewriteError,
)
from embed2prompt.generators.base import GenerationRequest
from embed2prompt.inversion.inference import InversionResult
from embed2prompt.openai_api.tokens import estimate_chat_tokens, estimate_embedding_tokens
from embed2prompt.pipeline.results import (
    EvaluationResult,
    PromptResult,
    VariantResult,
    describe,
    score,
)
from embed2prompt.pipeline.variants import (
    REWRITE_DRAFTS,
    REWRITE_TEMPLATE,
    best_of,
    plan_variants,
)
from embed2prompt.settings import Settings

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
LOCAL_EMBEDDINGS = "local:embeddings"  # the local embedder, run in this process
STAGE_NAMES = ("generate", "embed", "rewrite", "rewrite-evaluate", "rewrite-embed")


@dataclass(frozen=True, slots=True)
class Planned:
    """One request a stage makes for a row."""

    slot: str
    endpoint: str
    model: str
    body: dict[str, Any]
    tokens: int  # estimated input tokens
    max_output: int = 0  # the most output tokens it may be charged


def stage_name(stage: int) -> str:
    """``generate``, ``embed``, then ``rewrite 1``, ``rewrite-evaluate 1``, ..."""
    if stage <= 2:
        return STAGE_NAMES[stage - 1]
    number, phase = divmod(stage - 3, 3)
    return f"{STAGE_NAMES[2 + phase]} {number + 1}"


class EvaluationPlan:
    """Which requests each stage makes, and how their answers fold into a row."""

    def __init__(self, settings: Settings, variants: int) -> None:
        if settings.generator != "openai":
            raise NotAvailableError(
                "the Batch API mode batches the generator's calls: it needs --generator openai"
            )
        if REWRITE_DRAFTS != 1:  # a choice between drafts would need a stage of its own
            raise NotAvailableError("the Batch API mode plans one rewrite draft a rewrite")
        self.variants = variants
        self.chat_model = settings.generator_model or DEFAULT_OPENAI_CHAT_MODEL
        self.generator_name = f"openai:{self.chat_model}"
        if settings.embedder == "openai":
            self.embedding_endpoint = EMBEDDINGS
            self.embedding_model = settings.embedding_model or DEFAULT_OPENAI_EMBEDDING_MODEL
        else:
            self.embedding_endpoint, self.embedding_model = LOCAL_EMBEDDINGS, "local"
        self.dimensions = settings.embedding_dimensions
        self._template = settings.prompt_template
        self.max_tokens = settings.generation_max_tokens
        self._temperature = settings.generation_temperature
        self._seed = settings.generation_seed

    @property
    def stages(self) -> int:
        """The most stages a row may need: every variant a rewrite, at worst."""
        return 2 + 3 * self.variants

    # ------------------------------------------------------------------ planning

    def first_state(self, inversion: InversionResult) -> dict[str, Any]:
        """A row's state once inverted."""
        runners_up, rewrites = plan_variants(self.variants, inversion, rewriting=True)
        prompt = inversion.prompt
        return {
            "prompt": prompt,
            "prompt_similarity": inversion.cosine,
            "trace": list(inversion.trace),
            "seconds": inversion.seconds,
            "runners_up": [list(pair) for pair in runners_up],
            "rewrites": rewrites,
            "texts": {},  # slot: generated text, or {"error": ...}
            "original": None,
            "variants": [],
            "tried": [prompt, *(text for text, _ in runners_up)],
        }

    def requests(self, stage: int, state: dict[str, Any]) -> list[Planned]:
        if stage == 1:
            slots = [("o", state["prompt"])] + [
                (f"r{i}", text) for i, (text, _) in enumerate(state["runners_up"])
            ]
            return [self._chat(slot, self._template, text, 0) for slot, text in slots]
        if stage == 2:
            texts = [text for _, text in self._texts(state)]
            return [self._embeddings("e", texts)] if texts else []
        number, phase = divmod(stage - 3, 3)
        if phase == 0:
            base = _best_prompt(state)
            return [
                self._chat(f"d{i}", REWRITE_TEMPLATE, base, number * 10 + i)
                for i in range(REWRITE_DRAFTS)
            ]
        if phase == 1:
            return [self._chat("g", self._template, state["draft"], 0)]
        texts = [state["draft"]] + ([state["texts"]["g"]] if _ok(state["texts"].get("g")) else [])
        return [self._embeddings("e", texts)]

    def _chat(self, slot: str, template: str, prompt: str, seed: int) -> Planned:
        request = GenerationRequest(
            template.format(prompt=prompt),
            max_tokens=self.max_tokens,
            temperature=self._temperature,
            seed=self._seed + seed,
        )
        messages = request.messages()
        body = {
            "model": self.chat_model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        tokens = estimate_chat_tokens(messages, model=self.chat_model, max_tokens=0)
        return Planned(slot, CHAT, self.chat_model, body, tokens, self.max_tokens)

    def _embeddings(self, slot: str, texts: list[str]) -> Planned:
        body: dict[str, Any] = {"input": texts}
        tokens = 0
        if self.embedding_endpoint == EMBEDDINGS:
            body = {"model": self.embedding_model, "input": texts, "encoding_format": "base64"}
            if self.dimensions is not None:
                body["dimensions"] = self.dimensions
            tokens = estimate_embedding_tokens(texts, model=self.embedding_model)
        return Planned(slot, self.embedding_endpoint, self.embedding_model, body, tokens)

    # ------------------------------------------------------------------ folding

    def fold(
        self, stage: int, state: dict[str, Any], answers: dict[str, RequestRecord]
    ) -> tuple[int, bool]:
        """Fold stage ``stage``'s answers into ``state`` (in place): the stage the row
        is now at (a row whose rewrite failed skips that rewrite's other stages) and
        whether it is final."""
        if stage == 1:
            for slot in ["o", *(f"r{i}" for i in range(len(state["runners_up"])))]:
                state["texts"][slot] = self._text(answers.get(slot), self._prompt_of(state, slot))
            if not _ok(state["texts"]["o"]):
                state["original"] = _failed_original(state["texts"]["o"]["error"])
                return stage, True
            return stage, False
        if stage == 2:
            return self._fold_evaluations(state, answers.get("e"))
        number, phase = divmod(stage - 3, 3)
        if phase == 0:
            draft = self._text(answers.get("d0"), _best_prompt(state))
            if not _ok(draft):
                state["variants"].append(_failed_variant("", draft["error"]))
                return self._next_rewrite(state, number)
            if draft in state["tried"]:
                error = RepeatedRewriteError(
                    "the generator repeated a prompt already evaluated; no new rewrite"
                )
                state["variants"].append(_failed_variant(draft, describe(error)))
                return self._next_rewrite(state, number)
            state["draft"] = draft
            state["tried"].append(draft)
            state["texts"] = {}
            return stage, False
        if phase == 1:
            state["texts"]["g"] = self._text(answers.get("g"), state["draft"])
            return stage, False
        embedded = answers.get("e")
        draft, generated = state["draft"], state["texts"]["g"]
        if embedded is None or embedded.answer is None:
            state["variants"].append(_failed_variant(draft, _error_of(embedded)))
        elif not _ok(generated):
            variant = _failed_variant(draft, generated["error"])
            variant["prompt_similarity"] = embedded.answer["cosines"][0]
            state["variants"].append(variant)
        else:
            cosines = embedded.answer["cosines"]
            state["variants"].append(_variant(draft, "rewrite", cosines[0], cosines[1], generated))
        return self._next_rewrite(state, number)

    def _fold_evaluations(
        self, state: dict[str, Any], embedded: RequestRecord | None
    ) -> tuple[int, bool]:
        texts = self._texts(state)
        if embedded is None or embedded.answer is None:
            state["original"] = _failed_original(_error_of(embedded))
            return 2, True
        cosines = dict(zip((slot for slot, _ in texts), embedded.answer["cosines"], strict=True))
        state["original"] = {
            "similarity": cosines["o"],
            "success": True,
            "generated_text": state["texts"]["o"],
            "error": None,
        }
        for i, (prompt, prompt_cosine) in enumerate(state["runners_up"]):
            text = state["texts"][f"r{i}"]
            if _ok(text):
                variant = _variant(prompt, "refinement", prompt_cosine, cosines[f"r{i}"], text)
            else:
                variant = _failed_variant(prompt, text["error"], source="refinement")
                variant["prompt_similarity"] = prompt_cosine
            state["variants"].append(variant)
        state["texts"] = {}
        if not state["rewrites"]:
            return 2, True
        return 2, False

    def _next_rewrite(self, state: dict[str, Any], number: int) -> tuple[int, bool]:
        state.pop("draft", None)
        state["texts"] = {}
        done = 5 + 3 * number  # the last stage of rewrite ``number``
        return done, number + 1 >= state["rewrites"]

    def _texts(self, state: dict[str, Any]) -> list[tuple[str, str]]:
        """(slot, text) of the generations to embed after stage 1, original first."""
        return [(slot, text) for slot, text in state["texts"].items() if _ok(text)]

    def _prompt_of(self, state: dict[str, Any], slot: str) -> str:
        return str(state["prompt"] if slot == "o" else state["runners_up"][int(slot[1:])][0])

    def _text(self, record: RequestRecord | None, prompt: str) -> Any:
        """A chat answer's text (stripped), or ``{"error": ...}`` as the synchronous
        pipeline words it."""
        if record is None or record.answer is None:
            return {"error": _error_of(record)}
        text = str(record.answer["text"]).strip()
        if not text:
            error = EmptyGenerationError(
                f"{self.generator_name} wrote no text for the prompt {prompt[:60]!r}"
            )
            return {"error": describe(error)}
        return text


def result_of(index: int, state: dict[str, Any]) -> PromptResult:
    """A finished row as the synchronous pipeline's :class:`PromptResult`."""
    if "error" in state:  # the inversion failed
        return PromptResult(
            embedding_index=index,
            original_prompt=None,
            original_result=EvaluationResult(
                similarity=None,
                prompt_similarity=None,
                success=False,
                processing_time=0.0,
                error=state["error"],
            ),
            variants=[],
            best_variant=None,
        )
    original = state["original"] or _failed_original("not evaluated")
    variants = [VariantResult(**variant) for variant in state["variants"]]
    return PromptResult(
        embedding_index=index,
        original_prompt=state["prompt"],
        original_result=EvaluationResult(
            prompt_similarity=state["prompt_similarity"],
            processing_time=state["seconds"],
            **original,
        ),
        variants=variants,
        best_variant=best_of(variants),
        cosine_by_step=state.get("trace", []),
    )


def cosines_of(response: dict[str, Any], target: npt.NDArray[np.float32]) -> list[float]:
    """Each embedding of an ``/v1/embeddings`` response body, normalised, against the
    unit target (as :class:`~embed2prompt.embedders.openai.OpenAIEmbedder` and
    :class:`~embed2prompt.pipeline.quality.QualityEvaluator` compute it)."""
    data = sorted(response["data"], key=lambda item: item["index"])
    rows = [
        np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        if isinstance(item["embedding"], str)
        else np.asarray(item["embedding"], dtype=np.float32)
        for item in data
    ]
    vectors = normalise_rows(np.vstack(rows))
    return [float(value) for value in vectors @ target]


def chat_text(response: dict[str, Any]) -> str:
    """The first choice's text of a chat completion body."""
    choices = response.get("choices") or []
    if not choices:
        raise ApiError("the chat completion returned no choices")
    return str((choices[0].get("message") or {}).get("content") or "")


def _ok(text: Any) -> bool:
    return isinstance(text, str)


def _error_of(record: RequestRecord | None) -> str:
    message = record.error if record is not None and record.error else "no answer"
    return describe(BatchRequestError(message))


def _best_prompt(state: dict[str, Any]) -> str:
    """The prompt a rewrite starts from: the best so far, the original on a tie (the
    synchronous pipeline's rule)."""
    best = best_of([VariantResult(**variant) for variant in state["variants"]])
    if best is None:
        return str(state["prompt"])
    original = EvaluationResult(
        prompt_similarity=state["prompt_similarity"], processing_time=0.0, **state["original"]
    )
    original_score, best_score = score(original), score(best)
    if original_score is not None and best_score is not None and original_score >= best_score:
        return str(state["prompt"])
    return best.prompt


def _variant(
    prompt: str, source: str, prompt_similarity: float, similarity: float, text: str
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "source": source,
        "similarity": similarity,
        "prompt_similarity": prompt_similarity,
        "success": True,
        "processing_time": 0.0,
        "generated_text": text,
        "error": None,
    }


def _failed_variant(prompt: str, error: str, *, source: str = "rewrite") -> dict[str, Any]:
    return {
        "prompt": prompt,
        "source": source,
        "similarity": None,
        "prompt_similarity": None,
        "success": False,
        "processing_time": 0.0,
        "generated_text": None,
        "error": error,
    }


def _failed_original(error: str) -> dict[str, Any]:
    return {"similarity": None, "success": False, "generated_text": None, "error": error}


def body_text(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

"""How hard one inversion searches: :class:`SearchBudget`, defined once, read everywhere.

The library, the settings (``EMBED2PROMPT_REFINEMENT_*``), the CLI, the pipeline, the
service and the evaluation all describe a search with this one value. It imports
neither PyTorch nor NumPy, so that settings and ``--help`` stay light.

A budget is resolved in layers, each naming some fields (``None``: not named), the
later winning:

1. the library's defaults: the fields' defaults below;
2. a purpose's defaults: the pipeline's (:data:`PIPELINE_SEARCH`), where a prompt is
   judged by what an LLM writes from it;
3. the checkpoint's own ``search`` (in its JSON), measured for that model: the fluent
   inverter adds its own token edits and weighs readability;
4. what the caller asks for: keywords, settings, command-line options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embed2prompt.errors import ConfigurationError, InputError


@dataclass(frozen=True, kw_only=True)
class SearchBudget:
    """One inversion's search: the first pass's guesses, then ``steps`` of refinement.

    The first pass decodes ``candidates`` texts from the inverter (the greedy one and
    samples) and adds the ``neighbours`` training texts nearest to the target (the
    checkpoint's prompt bank). Each refinement step keeps a ``beam`` of hypotheses and
    proposes, for each, ``edits`` word edits guided by the residual, ``token_edits``
    one-token edits the inverter finds likeliest for the target, and, with ``strength``
    > 0, new guesses decoded
    from ``target + strength * (target - hypothesis)``. Hypotheses are ranked by cosine,
    or with ``fluency`` > 0 the best ``fluency_shortlist`` of them by cosine plus that
    weight times the text's readability (the fluent inverter's LM's mean token
    log-probability of the text alone; the small decoder's given the target).
    A target stops refining after ``max_embedder_calls`` texts embedded for it; the
    batch stops after ``max_seconds``.
    """

    steps: int = 0
    # A beam of one and many cheap steps of few edits measured best per embedder call
    # (docs/development-log.md, "What changed in the second session": the search grid).
    beam: int = 1
    edits: int = 32
    # Off: with the small decoder no re-decoded guess beat the word edits after the first
    # pass, at a third more time (docs/development-log.md, "What changed in the second
    # session").
    strength: float = 0.0
    fluency: float = 0.0  # cosine alone: the closest prompt, whatever it reads like
    # Off for the small decoder, whose likeliest tokens are its word salad; the fluent
    # inverter's checkpoint turns them on (BENCHMARKS.md, "token edits").
    token_edits: int = 0
    # Scoring fluency costs a forward pass a text: 6 measured as good as 8 in the pipeline
    # and faster; 4 lost quality (docs/development-log.md, "The fluency weight").
    fluency_shortlist: int = 6
    # The greedy text and 2 samples, plus the 2 nearest training texts: more of either
    # measured no better at less than half the one-pass speed (docs/development-log.md,
    # "First guesses").
    candidates: int = 3
    neighbours: int = 2
    max_embedder_calls: float = math.inf
    max_seconds: float = math.inf

    def __post_init__(self) -> None:
        whole = {
            "steps": (self.steps, 0),
            "beam": (self.beam, 1),
            "edits": (self.edits, 0),
            "token_edits": (self.token_edits, 0),
            "fluency_shortlist": (self.fluency_shortlist, 1),
            "candidates": (self.candidates, 1),
            "neighbours": (self.neighbours, 0),
        }
        for name, (value, least) in whole.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(
                    f"{name} must be >= {least} (a whole number), got {name}={value!r}"
                )
        for name in ("strength", "fluency", "max_embedder_calls", "max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise InputError(f"{name} must be a number, got {value!r}")
        if not 0 <= self.strength < math.inf or not 0 <= self.fluency < math.inf:
            raise InputError(
                "strength and fluency must be finite and >= 0, "
                f"got strength={self.strength}, fluency={self.fluency}"
            )
        if self.max_embedder_calls < 0 or self.max_seconds < 0:
            raise InputError(
                "max_embedder_calls and max_seconds must be >= 0, got "
                f"{self.max_embedder_calls} and {self.max_seconds}"
            )

    def updated(self, *layers: Mapping[str, Any] | None, **given: Any) -> SearchBudget:
        """This budget with each layer's fields, then ``given``'s, the later winning;
        a value of ``None`` leaves the field as it was. An unknown name is an
        :class:`InputError` naming the fields there are."""
        changes: dict[str, Any] = {}
        for layer in (*layers, given):
            for name, value in (layer or {}).items():
                if name not in FIELDS:
                    raise InputError(
                        f"unknown search setting {name!r}; expected some of {sorted(FIELDS)}"
                    )
                if value is not None:
                    changes[name] = value
        return dataclasses.replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def proposes(self) -> bool:
        """Whether a refinement step has any move to make."""
        return bool(self.edits or self.strength > 0 or self.token_edits)


FIELDS = frozenset(field.name for field in dataclasses.fields(SearchBudget))
# What a checkpoint may choose for itself: how it searches, not how long the caller lets
# it (steps, calls and seconds are the caller's).
MODEL_FIELDS = FIELDS - {"steps", "max_embedder_calls", "max_seconds"}

# The pipeline's search: 8 steps measured better than 4 (generations 0.712 against
# 0.699) and as good as 12 in less time; a fluency weight of 0.03 made prompts that the
# LLM restates more faithfully (generations 0.755 against 0.715 at 0). A checkpoint's
# own search wins over these: they were measured with the small decoder.
PIPELINE_STEPS = 8
PIPELINE_SEARCH: Mapping[str, Any] = {"steps": PIPELINE_STEPS, "fluency": 0.03}


def model_search(path: Path, own: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's own search settings, checked: a :class:`ConfigurationError` names a
    field it may not set."""
    unknown = sorted(set(own) - MODEL_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"{path}'s search names {unknown}; expected some of {sorted(MODEL_FIELDS)}"
        )
    try:
        SearchBudget().updated(own)
    except InputError as error:
        raise ConfigurationError(f"{path}'s search is invalid: {error}") from None
    return dict(own)

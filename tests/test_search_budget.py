"""One search budget, defined once: the library's defaults, the pipeline's, a checkpoint's
own search and the settings' choices, layered the same way wherever a search is run."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embed2prompt.backends import create_inverter
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.inversion.budget import PIPELINE_SEARCH, SearchBudget, model_search
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.inverters import checkpoint_info
from embed2prompt.inversion.model_paths import DEFAULT_MODEL, locate_model
from embed2prompt.inversion.prefix_training import FLUENT_SEARCH
from embed2prompt.pipeline import ParallelPromptGenerator
from embed2prompt.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "small_model.pt"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


@pytest.fixture(scope="module")
def own_search_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small decoder with a search of its own, as the fluent model's JSON has."""
    folder = tmp_path_factory.mktemp("own")
    copy = folder / "model.pt"
    shutil.copy(MODEL, copy)
    document = json.loads(MODEL.with_suffix(".json").read_text())
    document["search"] = {"edits": 16, "fluency": 0.5, "fluency_shortlist": 64}
    copy.with_suffix(".json").write_text(json.dumps(document))
    return copy


def test_the_settings_read_the_budget_without_loading_a_model() -> None:
    code = (
        "import sys; from embed2prompt.settings import Settings; "
        "from embed2prompt.inversion.budget import SearchBudget; "
        "print(Settings().refinement_steps, SearchBudget().edits, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == [str(PIPELINE_SEARCH["steps"]), "32", "False"]


def test_layers_the_later_winning_and_none_choosing_nothing() -> None:
    base = SearchBudget()
    assert (base.steps, base.beam, base.edits, base.fluency, base.neighbours) == (0, 1, 32, 0, 2)
    assert math.isinf(base.max_embedder_calls)
    layered = base.updated({"edits": 8, "fluency": 0.1}, {"edits": 4, "beam": None}, steps=2)
    assert (layered.steps, layered.beam, layered.edits, layered.fluency) == (2, 1, 4, 0.1)
    assert base.updated({"edits": None}) is base
    assert len({base, SearchBudget(), layered}) == 2  # a value: hashable, equal by fields
    with pytest.raises(InputError, match="unknown search setting 'edit'"):
        base.updated(edit=3)
    for bad, message in (
        ({"beam": 0}, "beam must be >= 1"),
        ({"steps": -1}, "steps=-1"),
        ({"fluency": float("nan")}, "fluency must be a number"),
        ({"strength": -0.5}, r"strength=-0\.5"),
        ({"edits": 2.5}, "edits must be >= 0"),
    ):
        with pytest.raises(InputError, match=message):
            base.updated(bad)


def test_a_checkpoints_own_search_wins_over_the_pipelines_and_the_settings_over_both(
    own_search_model: Path, embedder: LocalEmbedder
) -> None:
    default = EmbeddingToPromptInference(MODEL, embedder=embedder)
    own = EmbeddingToPromptInference(own_search_model, embedder=embedder)
    # The library: one pass; the model's own search otherwise.
    assert (default.search.steps, default.search.edits, default.search.fluency) == (0, 32, 0.0)
    assert (own.search.steps, own.search.edits, own.search.fluency) == (0, 16, 0.5)
    # The pipeline: its steps and fluency, unless the model measured its own.
    pipeline = ParallelPromptGenerator(default, Settings())
    assert (pipeline.search_budget().steps, pipeline.search_budget().fluency) == (8, 0.03)
    fluent = ParallelPromptGenerator(own, Settings()).search_budget()
    assert (fluent.steps, fluent.edits, fluent.fluency, fluent.fluency_shortlist) == (
        8,
        16,
        0.5,
        64,
    )
    # What the settings (EMBED2PROMPT_REFINEMENT_*) or a request choose wins.
    chosen = Settings(refinement_edits=4, refinement_fluency=0.0, retrieval_neighbours=0)
    budget = ParallelPromptGenerator(own, chosen).search_budget(refinement_steps=3)
    assert (budget.steps, budget.edits, budget.fluency, budget.neighbours) == (3, 4, 0.0, 0)


def test_the_default_inverter_refines_with_word_and_token_edits() -> None:
    """Its checkpoint's own search adds token edits and a fluency weight to the
    library's word edits, and does not turn those off (read without loading the LM)."""
    own = checkpoint_info(locate_model(DEFAULT_MODEL)).search
    budget = SearchBudget().updated(model_search(DEFAULT_MODEL, own))
    assert budget.edits == SearchBudget().edits > 0
    # The shipped checkpoint refines as a newly trained one would: one default, defined once.
    assert own == FLUENT_SEARCH
    assert budget.token_edits == FLUENT_SEARCH["token_edits"] > 0
    assert budget.fluency == FLUENT_SEARCH["fluency"] > 0


def test_create_inverter_builds_what_the_settings_name(
    own_search_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inverter = create_inverter(Settings(model_path=str(own_search_model), retrieval_neighbours=0))
    assert inverter.model_path == own_search_model
    assert inverter.search.neighbours == 0
    assert inverter.bank is None  # retrieval off: the bank is not even loaded
    monkeypatch.setenv("EMBED2PROMPT_MODEL_PATH", str(own_search_model))
    default_pipeline = ParallelPromptGenerator()
    assert default_pipeline.inference_engine.model_path == own_search_model
    assert default_pipeline.search_budget().edits == 16
    monkeypatch.setenv("EMBED2PROMPT_EMBEDDING_MODEL", "text-embedding-3-small")
    with pytest.raises(ConfigurationError, match="local embedding backend runs all-MiniLM"):
        create_inverter(Settings())

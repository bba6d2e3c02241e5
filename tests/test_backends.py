"""Choosing backends from settings, and the errors for impossible choices."""

from __future__ import annotations

import pydantic
import pytest

from embed2prompt import ConfigurationError, Settings
from embed2prompt.backends import create_embedder, create_generator
from embed2prompt.embedders.local import LocalEmbedder


def test_defaults_are_local_and_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(create_embedder(Settings()), LocalEmbedder)


def test_openai_backends_need_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        create_embedder(Settings(embedder="openai"))
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        create_generator(Settings(generator="openai"))


def test_backend_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED2PROMPT_EMBEDDER", "openai")
    monkeypatch.setenv("EMBED2PROMPT_EMBEDDING_MODEL", "text-embedding-3-large")
    settings = Settings()
    assert (settings.embedder, settings.embedding_model) == ("openai", "text-embedding-3-large")


def test_unknown_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED2PROMPT_EMBEDDER", "cohere")
    with pytest.raises(pydantic.ValidationError, match="'local' or 'openai'"):
        Settings()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"embedding_model": "bge-small"}, "runs all-MiniLM-L6-v2 only"),
        ({"embedding_dimensions": 128}, "text-embedding-3 models only"),
    ],
)
def test_impossible_local_embedder_choices(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_embedder(Settings(**settings))  # type: ignore[arg-type]


def test_unknown_local_generator_model() -> None:
    with pytest.raises(ConfigurationError, match="runs SmolLM2-135M-Instruct only"):
        create_generator(Settings(generator_model="llama-3-70b"))


def test_rate_limit_overrides_apply_to_the_tier() -> None:
    limits = Settings(rate_limit_tier="tier_3", requests_per_minute=100).rate_limits  # type: ignore[arg-type]
    assert limits.requests_per_minute == 100
    assert limits.requests_per_day == 10_000  # the rest is tier 3's

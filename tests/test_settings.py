"""The settings class: environment variables, defaults and clear errors."""

from __future__ import annotations

import pydantic
import pytest

from embed2prompt import ConfigurationError, RateLimitTier, Settings


def test_reads_prefixed_and_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EMBED2PROMPT_RATE_LIMIT_TIER", "TIER_4")
    monkeypatch.setenv("EMBED2PROMPT_MAX_ATTEMPTS", "3")
    settings = Settings()
    assert settings.require_openai_api_key() == "sk-from-env"
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.rate_limit_tier is RateLimitTier.TIER_4
    assert settings.retry_policy.max_attempts == 3
    assert "sk-from-env" not in repr(settings)


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings()
    assert settings.rate_limit_tier is RateLimitTier.TIER_2
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY is not set"):
        settings.require_openai_api_key()


def test_unknown_tier_in_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED2PROMPT_RATE_LIMIT_TIER", "platinum")
    with pytest.raises(pydantic.ValidationError, match="expected one of: tier_1"):
        Settings()


def test_invalid_numbers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED2PROMPT_REQUEST_TIMEOUT_S", "-1")
    with pytest.raises(pydantic.ValidationError, match="request_timeout_s"):
        Settings()

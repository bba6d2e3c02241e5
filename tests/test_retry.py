"""The retry policy's pure functions, each checked with a table."""

from __future__ import annotations

import email.utils
import random

import httpx2
import openai
import pytest

from embed2prompt import ApiError, ConfigurationError
from embed2prompt.engine.retry import (
    Failure,
    RetryPolicy,
    backoff_delay,
    classify,
    is_retryable,
    parse_retry_after,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500", "retry-after": "9"}, 1.5),  # -ms wins
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, None),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == (
        pytest.approx(expected) if expected is not None else None
    )


@pytest.mark.parametrize(
    ("failure", "retry"),
    [
        (Failure("connection", "reset"), True),
        (Failure("timeout", "slow"), True),
        (Failure("status", "", status=408), True),
        (Failure("status", "", status=409), True),
        (Failure("status", "", status=429, code="rate_limit_exceeded"), True),
        (Failure("status", "", status=429), True),
        (Failure("status", "", status=429, code="insufficient_quota"), False),
        (Failure("status", "", status=500), True),
        (Failure("status", "", status=502), True),
        (Failure("status", "", status=503, code="server_is_overloaded"), True),
        (Failure("status", "", status=400), False),
        (Failure("status", "", status=401, code="invalid_api_key"), False),
        (Failure("status", "", status=403), False),
        (Failure("status", "", status=404), False),
        (Failure("status", "", status=422), False),
    ],
)
def test_is_retryable(failure: Failure, retry: bool) -> None:
    assert is_retryable(failure) is retry


@pytest.mark.parametrize("retry_number", [0, 1, 2, 5, 10, 100])
def test_backoff_is_full_jitter_under_a_cap(retry_number: int) -> None:
    rng = random.Random(retry_number)
    ceiling = min(8.0, 0.5 * 2**retry_number)
    delays = [backoff_delay(retry_number, base=0.5, cap=8.0, rng=rng) for _ in range(2000)]
    assert all(0 <= delay <= ceiling for delay in delays)
    # Full jitter: spread over the whole range, not clustered at the top.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95


def test_policy_prefers_the_servers_wait_and_caps_it() -> None:
    policy = RetryPolicy(max_attempts=5, max_retry_after_s=60)
    rng = random.Random(0)
    told = Failure("status", "", status=429, headers={"retry-after-ms": "1200"})
    assert policy.delay_before_retry(told, attempt=1, rng=rng, now=NOW) == pytest.approx(1.2)
    too_long = Failure("status", "", status=429, headers={"retry-after": "3600"})
    assert policy.delay_before_retry(too_long, attempt=1, rng=rng, now=NOW) == 60


def test_policy_gives_up_after_max_attempts_and_on_permanent_errors() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(0)
    transient = Failure("status", "", status=500)
    assert policy.delay_before_retry(transient, attempt=2, rng=rng, now=NOW) is not None
    assert policy.delay_before_retry(transient, attempt=3, rng=rng, now=NOW) is None
    permanent = Failure("status", "", status=400)
    assert policy.delay_before_retry(permanent, attempt=1, rng=rng, now=NOW) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "at least 1"),
        ({"max_attempts": 2.5}, "integer"),
        ({"base_delay_s": -1}, "base_delay_s"),
        ({"max_delay_s": float("inf")}, "max_delay_s"),
    ],
)
def test_policy_validates_its_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def _status_error(status: int, body: dict[str, object], headers: dict[str, str]) -> Exception:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/embeddings")
    response = httpx2.Response(status, request=request, headers=headers, json=body)
    error_class = {429: openai.RateLimitError, 401: openai.AuthenticationError}.get(
        status, openai.InternalServerError
    )
    return error_class("error", response=response, body=body)


def test_classify_reads_status_code_and_headers_of_sdk_errors() -> None:
    body = {"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}}
    failure = classify(_status_error(429, body, {"retry-after": "2"}))
    assert failure is not None
    assert (failure.kind, failure.status, failure.code) == ("status", 429, "rate_limit_exceeded")
    assert failure.message == "Slow down"
    assert failure.headers["retry-after"] == "2"
    assert failure.is_rate_limit
    assert failure.asks_everyone_to_wait


def test_classify_connection_timeout_and_other_errors() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/embeddings")
    timeout = classify(openai.APITimeoutError(request=request))
    connection = classify(openai.APIConnectionError(request=request))
    assert timeout is not None
    assert timeout.kind == "timeout"
    assert connection is not None
    assert connection.kind == "connection"
    assert classify(TimeoutError()) == Failure("timeout", "the request timed out")
    api = classify(ApiError("bad gateway", status=502))
    assert api is not None
    assert api.status == 502
    assert classify(ValueError("a bug")) is None
    assert classify(ApiError("no status")) is None


def test_quota_exhaustion_is_not_a_rate_limit() -> None:
    body = {
        "error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    }
    failure = classify(_status_error(429, body, {}))
    assert failure is not None
    assert not failure.is_rate_limit
    assert not is_retryable(failure)

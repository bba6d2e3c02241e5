"""Reading x-ratelimit-* headers and Go durations."""

from __future__ import annotations

import pytest

from embed2prompt.engine.headers import RateLimitHeaders, format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20ms", 0.02),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("250us", 0.00025),
        ("17µs", 0.000017),
        ("2.5", 2.5),
        ("0s", 0.0),
        ("", None),
        ("fast", None),
        ("5 minutes", None),
        ("1s2", None),
        ("-1", None),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    parsed = parse_go_duration(text)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [0.001, 0.02, 0.5, 1.0, 12.5, 59.9, 60.0, 361.25])
def test_format_round_trips(seconds: float) -> None:
    assert parse_go_duration(format_go_duration(seconds)) == pytest.approx(seconds, rel=0.01)


def test_from_openai_headers() -> None:
    headers = RateLimitHeaders.from_headers(
        {
            "X-RateLimit-Limit-Requests": "5000",
            "x-ratelimit-limit-tokens": "4000000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-remaining-tokens": "3999980",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-reset-tokens": "6m0s",
            "content-type": "application/json",
        }
    )
    assert headers == RateLimitHeaders(5000, 4_000_000, 4999, 3_999_980, 0.012, 360.0)
    assert not headers.is_empty


def test_absent_or_malformed_headers_are_ignored() -> None:
    assert RateLimitHeaders.from_headers({}).is_empty
    odd = RateLimitHeaders.from_headers(
        {"x-ratelimit-remaining-requests": "many", "x-ratelimit-reset-tokens": "later"}
    )
    assert odd.is_empty

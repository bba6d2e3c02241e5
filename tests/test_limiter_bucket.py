"""The pacing guarantee of the limiter's bucket, checked on random schedules."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from embed2prompt.engine.limiter import _MIN_WAIT_S, _Bucket
from tests.pacing import BURSTS, RATES, assert_paced, schedules


@settings(max_examples=300, deadline=None)
@given(rate=RATES, burst=BURSTS, requests=schedules(60))
# Found by hypothesis: a deficit of 6e-5 units at 62 units/s is a wait under a
# microsecond, which was rounded down to none and admitted 1.00006 units of a burst of 1.
@example(rate=62.0, burst=1.0, requests=[(0.0, 1.0), (0.0, 6.103515625e-05)])
def test_any_interval_admits_at_most_rate_times_length_plus_burst(
    rate: float, burst: float, requests: list[tuple[float, float]]
) -> None:
    """Admit each request (gap before it, cost as a fraction of the burst) as early as the
    bucket allows, first come first served; then in every interval [t_i, t_j] the admitted
    cost is at most rate * (t_j - t_i) + burst."""
    bucket = _Bucket(per_second=rate, burst=burst)
    now, admitted = 0.0, []
    for gap, fraction in requests:
        now += gap
        cost = fraction * burst
        now += bucket.wait(cost, now)
        bucket.take(cost, now)
        admitted.append((now, cost))
    assert_paced(admitted, rate, burst)


@given(
    rate=RATES,
    burst=BURSTS,
    cost=st.floats(min_value=0, max_value=500),
)
def test_a_full_bucket_admits_at_once_and_waits_are_exact(
    rate: float, burst: float, cost: float
) -> None:
    bucket = _Bucket(per_second=rate, burst=burst)
    assert bucket.wait(min(cost, burst), 0.0) == 0.0
    bucket.take(burst, 0.0)  # now empty
    wait = bucket.wait(cost, 0.0)
    exact = min(cost, burst) / rate
    if min(cost, burst) <= 1e-9 * max(1.0, burst):  # within the bucket's rounding
        assert wait == 0.0
    elif exact < _MIN_WAIT_S:  # rounded up to the shortest timer, never down to none
        assert wait == _MIN_WAIT_S
    else:
        assert abs(wait - exact) <= 1e-9 * (1 + wait)
    assert bucket.wait(cost, wait) == 0.0

"""What every limiter's bucket must guarantee, and random schedules to check it on."""

from __future__ import annotations

from hypothesis import strategies as st

RATES = st.floats(min_value=0.01, max_value=1_000)  # units a second
BURSTS = st.floats(min_value=1, max_value=500)


def schedules(max_requests: int) -> st.SearchStrategy[list[tuple[float, float]]]:
    """Requests as (seconds since the previous one, cost as a fraction of the burst)."""
    return st.lists(
        st.tuples(st.floats(min_value=0, max_value=5), st.floats(min_value=0, max_value=1)),
        min_size=1,
        max_size=max_requests,
    )


def assert_paced(admitted: list[tuple[float, float]], rate: float, burst: float) -> None:
    """In every interval [t_i, t_j] of the admissions (time, cost), the admitted cost is at
    most rate * (t_j - t_i) + burst (the GCRA bound), to a relative 1e-6."""
    for i in range(len(admitted)):
        total = 0.0
        for j in range(i, len(admitted)):
            total += admitted[j][1]
            span = admitted[j][0] - admitted[i][0]
            assert total <= rate * span + burst + 1e-6 * (burst + total)

"""Sample summaries: percentiles like numpy's, the noise flag, the median's order-statistic
interval, tail percentiles only from enough samples."""

from __future__ import annotations

import pytest

from emobench.stats.summary import MIN_SAMPLES_FOR, Stats, median_ci, median_ci_ranks, percentile


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_stats_summary_and_noise_flag() -> None:
    tight = Stats.from_samples([10.0, 10.1, 9.9, 10.0, 10.05], "ms")
    assert tight.n == 5 and tight.median == 10.0 and tight.unit == "ms"
    assert tight.iqr == pytest.approx(0.05)  # p75 10.05 - p25 10.0
    assert not tight.noisy
    loose = Stats.from_samples([10.0, 14.0, 8.0, 12.0, 9.0], "ms")
    assert loose.iqr / loose.median > 0.1 and loose.noisy
    assert loose.samples == [10.0, 14.0, 8.0, 12.0, 9.0]
    scaled = tight.scaled(1000 / 4, "us/image")
    assert scaled.median == pytest.approx(2500.0) and scaled.unit == "us/image"


def test_median_interval_from_order_statistics() -> None:
    assert median_ci_ranks(5) is None  # 2 x (1/2)^5 = 6.25% > 5%: no 95% interval exists
    assert median_ci_ranks(6) == (0, 5)  # min and max: coverage 1 - 2/64 = 96.9%
    assert median_ci_ranks(20) == (5, 14)  # the textbook 6th and 15th order statistics
    values = sorted(float(v) for v in range(1, 21))
    assert median_ci(values) == (6.0, 15.0)
    stats = Stats.from_samples(values, "ms")
    assert (stats.median_ci_low, stats.median_ci_high) == (6.0, 15.0)


@pytest.mark.parametrize(("q", "attr"), [(90, "p90"), (99, "p99")])
def test_tail_percentiles_need_enough_samples(q: int, attr: str) -> None:
    need = MIN_SAMPLES_FOR[q]
    few = Stats.from_samples([float(i) for i in range(need - 1)], "ms")
    assert getattr(few, attr) is None  # would just be (near) the maximum
    enough = Stats.from_samples([float(i) for i in range(need)], "ms")
    assert getattr(enough, attr) == pytest.approx((need - 1) * q / 100)


def test_t_interval_of_runs() -> None:
    from scipy import stats as sps

    from emobench.stats.summary import log_t_interval, t_interval

    values = [14.0, 15.0, 16.5]
    mean, low, high = t_interval(values)
    expected = sps.t.interval(0.95, 2, loc=sum(values) / 3, scale=sps.sem(values))
    assert mean == pytest.approx(15.166666666666666)
    assert (low, high) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
    assert t_interval([2.0, 2.0]) == (2.0, 2.0, 2.0)  # no spread: the mean at both ends
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])
    # on the log scale: a ratio and its inverse are the same distance from 1
    centre, lo, hi = log_t_interval([0.5, 2.0, 1.0])
    assert centre == pytest.approx(1.0) and lo == pytest.approx(1 / hi)
    with pytest.raises(ValueError, match="positive"):
        log_t_interval([1.0, 0.0])


def test_median_interval_needs_six_samples_at_95_percent() -> None:
    from emobench.stats.summary import median_ci_min_n

    assert median_ci_min_n() == 6
    assert median_ci_ranks(5) is None and median_ci_ranks(6) is not None


def test_intervals_past_the_float_range_saturate() -> None:
    """#22 review: run ratios [1e-300, 1e300, 1.0] made exp overflow (a traceback in claims
    and report --html): the bound past the float range is open (inf), the other 0."""
    import math

    from emobench.stats.summary import log_t_interval, t_interval

    assert log_t_interval([1e-300, 1e300, 1.0]) == (pytest.approx(1.0), 0.0, math.inf)
    assert t_interval([1e308, -1e308, 1e308])[1:] == (-math.inf, math.inf)
    mean, low, high = t_interval([1e308, 1e308, 1e308])  # fmean overflows its sum
    assert mean == pytest.approx(1e308) and (low, high) == (-math.inf, math.inf)

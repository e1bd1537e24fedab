from __future__ import annotations

import pytest

from emobench.measure.stats import Stats, percentile
from emobench.measure.timing import LoopSettings, time_loop


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_loop_counts_cold_warmup_and_samples() -> None:
    clock = FakeClock()
    calls: list[int] = []
    durations = iter([50.0] + [5.0] * 1000)  # the first (cold) call is slow

    def timer(fn) -> float:
        fn()
        ms = next(durations)
        clock.now += ms / 1000
        return ms

    result = time_loop(lambda: calls.append(1), LoopSettings(2, 3, 0.0), timer, "fake", clock)
    assert result.cold_start_ms == 50.0
    assert result.warmup_iters == 2
    assert result.stats.n == 3 and result.stats.median == 5.0
    assert len(calls) == 1 + 2 + 3


def test_time_loop_runs_until_min_time() -> None:
    clock = FakeClock()

    def timer(fn) -> float:
        fn()
        clock.now += 0.01
        return 10.0

    result = time_loop(lambda: None, LoopSettings(0, 2, 0.5), timer, "fake", clock)
    assert result.stats.n == 50  # 2 iterations would do, but 0.5 s of 10 ms calls is 50

"""The timing loops: cold call, warmup, samples, stopping rules, paired ABBA rounds."""

from __future__ import annotations

import pytest

from emobench.measure.timing import STOP_CI, STOP_TIME_CAP, LoopSettings, time_loop
from tests.factories import FakeClock


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
    # identical samples: the median's 95% interval has zero width from n = 6, the first n for
    # which a distribution-free interval exists
    assert result.stats.n == 6 and result.stats.median == 5.0
    assert result.stop_reason == STOP_CI
    assert len(calls) == 1 + 2 + 6


def test_time_loop_runs_until_min_time() -> None:
    clock = FakeClock()

    def timer(fn) -> float:
        fn()
        clock.now += 0.01
        return 10.0

    result = time_loop(lambda: None, LoopSettings(0, 2, 0.5), timer, "fake", clock)
    assert result.stats.n == 50  # 2 iterations would do, but 0.5 s of 10 ms calls is 50


def test_time_loop_stops_at_its_time_cap_when_the_median_stays_uncertain() -> None:
    clock = FakeClock()
    values = iter([5.0, 10.0] * 1000)  # bimodal: the median's interval never narrows

    def timer(fn) -> float:
        ms = next(values)
        clock.now += ms / 1000
        return ms

    settings = LoopSettings(warmup_iters=0, min_iters=3, max_time_s=0.1, target_ci=0.02)
    result = time_loop(lambda: None, settings, timer, "fake", clock, cold=False)
    assert result.stop_reason == STOP_TIME_CAP and result.cold_start_ms is None
    assert result.stats.n == 14  # 7 pairs of 5 + 10 ms reach 0.105 s, the first past 0.1 s
    assert result.elapsed_s == pytest.approx(0.105)


def test_time_loop_takes_min_iters_even_past_its_cap() -> None:
    clock = FakeClock()

    def timer(fn) -> float:
        clock.now += 1.0
        return 1000.0

    settings = LoopSettings(warmup_iters=0, min_iters=3, max_time_s=0.5)
    result = time_loop(lambda: None, settings, timer, "fake", clock, cold=False)
    assert result.stats.n == 3 and result.stop_reason == STOP_TIME_CAP


def test_paired_loop_alternates_abba_and_stops_on_the_ratio() -> None:
    from emobench.measure.timing import paired_loop

    clock = FakeClock()
    calls: list[str] = []
    drift = iter([1.0 + 0.1 * i for i in range(1000)])  # the machine slows down steadily

    def side(name: str, base_ms: float):
        def sample() -> tuple[float, ...]:
            ms = base_ms * next(drift)
            calls.append(name)
            clock.now += ms / 1000
            return (ms,)

        return sample

    settings = LoopSettings(warmup_iters=1, min_iters=6, max_time_s=100.0, target_ci=0.10)
    result = paired_loop(side("A", 20.0), side("B", 2.0), settings, clock)
    assert calls[:2] == ["A", "B"]  # the warmup
    assert calls[2:10] == ["A", "B", "B", "A", "A", "B", "B", "A"]  # ABBA rounds
    assert result.stop_reason == STOP_CI and len(result.ratios) == 6
    # the machine slowed down ~2x over the run, yet every round's ratio stays near the true 10x
    assert all(9.0 < r[0] < 11.0 for r in result.ratios)
    a = [s[0] for s in result.samples_a]
    assert max(a) / min(a) > 1.5  # while the raw samples drifted a lot

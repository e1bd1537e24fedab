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


# -- the watchdog: a call that runs past its deadline is cut (issue #26) --------------------------


def test_watchdog_cuts_a_sleeping_call_and_restores_the_previous_alarm() -> None:
    import signal
    import time

    from emobench.measure.timing import CallCut, Watchdog

    def previous(_signum, _frame) -> None:
        raise AssertionError("the previous SIGALRM handler ran during the watched call")

    old_handler = signal.signal(signal.SIGALRM, previous)
    signal.setitimer(signal.ITIMER_REAL, 1000.0)  # someone else's timer, far in the future
    try:
        watchdog = Watchdog(0.05, "the 0.05 s left of a test bound")
        with watchdog, pytest.raises(CallCut, match=r"a call was cut after .* s: it ran past the"):
            watchdog.call(time.sleep, 30)  # cut by the alarm: the test does not wait 30 s
        assert watchdog.cut is not None and "0.05 s left of a test bound" in watchdog.cut
        assert signal.getsignal(signal.SIGALRM) is previous
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 1000.0  # the other timer is running again
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)


def test_watchdog_leaves_sigterm_and_ctrl_c_alone() -> None:
    import signal

    from emobench.cli.shell import sigterm_raises
    from emobench.measure.timing import Watchdog

    def interrupted() -> None:
        raise KeyboardInterrupt

    with sigterm_raises():
        term = signal.getsignal(signal.SIGTERM)
        watchdog = Watchdog(10.0, "a test bound")
        with watchdog:
            with pytest.raises(KeyboardInterrupt):  # a Ctrl-C is not a cut
                watchdog.call(interrupted)
            assert watchdog.cut is None
        assert signal.getsignal(signal.SIGTERM) is term
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_watchdog_off_the_main_thread_stops_after_a_late_call() -> None:
    import threading
    import time

    from emobench.measure.timing import CallCut, Watchdog

    caught: list[BaseException] = []

    def worker() -> None:
        watchdog = Watchdog(0.01, "a test bound")
        try:
            with watchdog:
                watchdog.call(time.sleep, 0.05)  # not interruptible here: noticed on return
        except CallCut as exc:
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(caught) == 1 and str(caught[0]).startswith("one call took ")


def test_unbounded_watchdog_only_calls() -> None:
    from emobench.measure.timing import UNWATCHED

    with UNWATCHED:
        assert UNWATCHED.call(lambda x: x + 1, 1) == 2
    assert UNWATCHED.cut is None


def test_time_loop_keeps_the_samples_before_a_cut_call() -> None:
    import time

    from emobench.measure.timing import STOP_CUT, Watchdog

    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        if len(calls) == 5:
            time.sleep(30)  # the fifth call hangs: cut, the loop ends with what it has

    settings = LoopSettings(warmup_iters=1, min_iters=100, max_time_s=1000.0)
    result = time_loop(fn, settings, watchdog=Watchdog(1.0, "a test bound"))
    assert result.stop_reason == STOP_CUT
    assert len(calls) == 5  # cold, warmup, two samples, then the cut one: nothing after it
    assert result.stats.n == 2 and result.cold_start_ms is not None


def test_time_loop_cut_before_any_sample_is_call_cut() -> None:
    import time

    from emobench.measure.timing import CallCut, Watchdog

    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        time.sleep(30)

    with pytest.raises(CallCut):
        time_loop(fn, LoopSettings(warmup_iters=1, min_iters=3), watchdog=Watchdog(0.05, "b"))
    assert len(calls) == 1  # the cold call was cut: no warmup, no samples


def test_paired_loop_keeps_whole_rounds_before_a_cut() -> None:
    import time

    from emobench.measure.timing import STOP_CUT, Watchdog, paired_loop

    calls: list[str] = []

    def side(name: str):
        def sample() -> tuple[float, ...]:
            calls.append(name)
            if len(calls) == 7:  # warmup A B, round 1 A B, round 2 B A, round 3 A: hangs
                time.sleep(30)
            return (1.0,)

        return sample

    settings = LoopSettings(warmup_iters=1, min_iters=100, max_time_s=1000.0)
    result = paired_loop(side("A"), side("B"), settings, watchdog=Watchdog(1.0, "a test bound"))
    assert result.stop_reason == STOP_CUT and len(result.ratios) == 2
    assert calls == ["A", "B", "A", "B", "B", "A", "A"]


def test_a_cold_call_longer_than_the_cap_is_its_own_warmup() -> None:
    """--quick and --max-time do not cut a call (the minimum samples still run), but a cold call
    that alone outlasted the cap skips the warmup: a slow model costs one call less per loop."""
    clock = FakeClock()
    calls: list[int] = []

    def timer(fn) -> float:
        fn()
        clock.now += 2.0  # every call takes 2 s against a 0.5 s cap
        return 2000.0

    settings = LoopSettings(warmup_iters=1, min_iters=1, max_time_s=0.5)
    result = time_loop(lambda: calls.append(1), settings, timer, "fake", clock)
    assert result.warmup_iters == 0 and result.stats.n == 1
    assert len(calls) == 2  # the cold call and one sample; the warmup was a third call before

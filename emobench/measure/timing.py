"""Wall-clock timing loops: a cold call, warmup, then samples until the median is known well
enough (or a time cap ends the loop), with the reason the loop stopped recorded.

CPU timing uses perf_counter_ns. CUDA timing records events around the call on the current
stream and waits for the end event, so each sample covers the GPU work the call queued.

A `Watchdog` bounds every call of a measurement by a deadline (the run's --time-budget): a call
that runs past it is cut (SIGALRM in the main thread; elsewhere noticed when it returns) and
the measurement ends with the samples it had, or none.
"""

from __future__ import annotations

import bisect
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import torch

from emobench.results.measurements import TimingResult
from emobench.stats.summary import Stats, median_ci_halfwidth

WARMUP_ITERS = 1
MIN_ITERS = 3
MIN_TIME_S = 0.0
MAX_TIME_S = 2.0  # per measurement: no loop runs unbounded on a slow device
TARGET_CI = 0.02  # stop once the median's 95% interval is within +-2%
MAX_ITERS = 10_000  # a guard against a near-zero-cost callable spinning for ever

STOP_CI = "ci"  # the median's 95% confidence interval reached the target
STOP_TIME_CAP = "time cap"  # the per-measurement cap ran out first
STOP_BUDGET = "run budget"  # the share of --time-budget left to this measurement ran out
STOP_MAX_ITERS = "max iters"
STOP_CUT = "call cut"  # the watchdog cut a call that ran past the run's time budget
STOP_REASONS = (STOP_CI, STOP_TIME_CAP, STOP_BUDGET, STOP_MAX_ITERS, STOP_CUT)

Timer = Callable[[Callable[[], Any]], float]  # runs fn once, returns milliseconds
T = TypeVar("T")
ALARM_RETRY_S = 0.001  # an alarm that lands in an __enter__/__exit__ waits this long


class CallCut(Exception):
    """The watchdog stopped a measurement: one call ran past its deadline. `reason` says by how
    much and which bound."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Alarm(BaseException):
    """Raised by the watchdog's SIGALRM handler inside the call it cuts. A BaseException, like
    KeyboardInterrupt, so a model's `except Exception` does not swallow it."""


class Watchdog:
    """Bounds each call of one measurement by a deadline `limit_s` seconds after it was made;
    `limit_s` None: no bound (every call runs as it always did, for one extra function call
    outside the timed region).

    Inside `with watchdog:` (main thread), each `call` arms a one-shot ITIMER_REAL for the time
    left; its SIGALRM handler raises inside the call, which then ends as CallCut. Python code
    (a plugin's `time.sleep`, its layers' forward methods) stops at once; a C kernel finishes
    first. An alarm that lands inside an `__enter__`/`__exit__` waits a millisecond, so no
    torch mode (inference, autocast, a dispatch mode) is left half switched. Off the main
    thread, or where SIGALRM belongs to C code, a call is not interrupted: one that returns
    past the deadline ends the measurement all the same. The previous SIGALRM handler and any
    timer already running are restored on the way out; SIGTERM and SIGINT are untouched.
    """

    def __init__(
        self,
        limit_s: float | None,
        bound: str = "",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.limit_s = limit_s
        self.bound = bound  # e.g. "the 4.2 s left of --time-budget 15 s"
        self.clock = clock
        self.deadline = None if limit_s is None else clock() + limit_s
        self.cut: str | None = None  # why the measurement stopped, once a call was cut
        self._depth = 0
        self._signals = False
        self._previous: Any = None
        self._previous_timer = (0.0, 0.0)
        self._entered_at = 0.0
        self._armed = False
        self._frame: FrameType | None = None

    def __enter__(self) -> Watchdog:
        self._depth += 1
        if self._depth > 1 or self.deadline is None:
            return self
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGALRM)
        if previous is None:  # installed from C: it could not be put back
            return self
        self._previous = previous
        self._previous_timer = signal.setitimer(signal.ITIMER_REAL, 0)
        self._entered_at = time.monotonic()
        signal.signal(signal.SIGALRM, self._on_alarm)
        self._signals = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth > 0 or not self._signals:
            return
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        self._signals = False
        delay, interval = self._previous_timer
        if delay > 0:  # someone else's timer: what was left of it (at once if it is overdue)
            spent = time.monotonic() - self._entered_at
            signal.setitimer(signal.ITIMER_REAL, max(delay - spent, 1e-6), interval)

    def _on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        if not self._armed:
            return
        probe = frame
        while probe is not None and probe is not self._frame:
            if probe.f_code.co_name in ("__enter__", "__exit__"):
                signal.setitimer(signal.ITIMER_REAL, ALARM_RETRY_S)
                return
            probe = probe.f_back
        self._armed = False
        raise _Alarm()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args), or CallCut once it has run past the deadline (and `cut` says why)."""
        if self.deadline is None:
            return fn(*args)
        started = self.clock()
        left = self.deadline - started
        if left <= 0:
            raise self._stop(f"no time was left of {self.bound}")
        try:
            if self._signals:  # armed inside the try: an alarm can land as soon as it is set
                self._frame = sys._getframe()
                self._armed = True
                signal.setitimer(signal.ITIMER_REAL, left)
            result = fn(*args)
            self._armed = False
        except _Alarm:
            took = self.clock() - started
            raise self._stop(
                f"a call was cut after {took:.3g} s: it ran past {self.bound}"
            ) from None
        finally:
            if self._signals:
                self._armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        took = self.clock() - started
        if took > left:  # not interrupted (another thread, or the model swallowed the alarm)
            raise self._stop(f"one call took {took:.3g} s, more than {self.bound}")
        return result

    def _stop(self, reason: str) -> CallCut:
        self.cut = reason
        return CallCut(reason)


UNWATCHED = Watchdog(None)


@dataclass(frozen=True)
class LoopSettings:
    """How long one timed loop may run and when it may stop.

    A loop takes at least `min_iters` samples and `min_time_s` seconds; after that it stops as
    soon as the median's 95% interval is within +-`target_ci`, or `max_time_s` has passed.
    """

    warmup_iters: int = WARMUP_ITERS
    min_iters: int = MIN_ITERS
    min_time_s: float = MIN_TIME_S
    max_time_s: float = MAX_TIME_S
    target_ci: float = TARGET_CI
    max_iters: int = MAX_ITERS
    cap_reason: str = (
        STOP_TIME_CAP  # what to call the cap: STOP_BUDGET when the run's budget set it
    )


def cpu_timer(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


BLOCK_MS = 10.0  # a blocked sample (throughput-like figures) spans at least this much time
MAX_BLOCK_CALLS = 1000


def cuda_event_timer(device: torch.device, calls: int = 1) -> Timer:
    """CUDA events around `calls` back-to-back calls on `device`'s current stream, one
    synchronisation per sample; returns milliseconds per call.

    With calls=1 each sample is one call's latency (the GPU idles while Python launches it);
    with more, the launches overlap the GPU work, as in steady-state throughput.
    """
    stream = torch.cuda.current_stream(device)

    def timer(fn: Callable[[], Any]) -> float:
        torch.cuda.synchronize(device)  # nothing queued earlier leaks into this sample
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        for _ in range(calls):
            fn()
        end.record(stream)
        end.synchronize()
        return float(start.elapsed_time(end)) / calls

    return timer


def block_calls(one_call_ms: float, block_ms: float = BLOCK_MS) -> int:
    """Calls per blocked sample so that one sample spans at least `block_ms`."""
    if one_call_ms <= 0:
        return MAX_BLOCK_CALLS
    return max(1, min(MAX_BLOCK_CALLS, math.ceil(block_ms / one_call_ms)))


def timer_for(device: torch.device) -> tuple[Timer, str]:
    """The per-call timer: latency percentiles come from it."""
    if device.type == "cuda":
        return cuda_event_timer(device), "cuda_event"
    return cpu_timer, "perf_counter_ns"


def cpu_blocked_timer(calls: int) -> Timer:
    """`calls` back-to-back calls between two perf_counter_ns readings; ms per call."""

    def timer(fn: Callable[[], Any]) -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - start) / 1e6 / calls

    return timer


SIZING_CALLS = 3  # timed calls the block size is picked from (the fastest), after a warm one
SIZING_ENOUGH_MS = 10 * BLOCK_MS  # a call this long is a block of one whatever the others take


@dataclass(frozen=True)
class BlockTimer:
    """A throughput-like timer: `calls` back-to-back calls per sample."""

    timer: Timer
    name: str
    calls: int


def sized_block_timer(
    device: torch.device,
    fn: Callable[[], Any],
    watchdog: Watchdog = UNWATCHED,
    warm: bool = False,
) -> BlockTimer:
    """The timer for throughput-like figures: blocks of calls per sample, sized so a block
    spans >= BLOCK_MS (like torch.utils.benchmark's blocked_autorange).

    `fn` runs once untimed (unless `warm`: it already ran at this shape; a shape's first call
    selects kernels, autotunes, allocates, and says nothing about the block), then up to
    SIZING_CALLS times, each timed alone; the fastest sets the block, so one slow call cannot
    shrink the blocks to per-call synchronisation. A call of SIZING_ENOUGH_MS or more ends the
    sizing early (ten times a block: no other call would change it). CUDA: one
    synchronisation per block. CPU: a call shorter than BLOCK_MS is timed in blocks too, so
    allocator page faults and timer jitter average out inside a sample (a 0.7 ms batched
    preprocessing call varied +-20% sample to sample, a block of 15 a few %); a longer call
    keeps the per-call timer."""
    if not warm:
        watchdog.call(fn)
    one_call = cuda_event_timer(device) if device.type == "cuda" else cpu_timer
    fastest = math.inf
    for _ in range(SIZING_CALLS):
        took = watchdog.call(one_call, fn)
        fastest = min(fastest, took)
        if took >= SIZING_ENOUGH_MS:
            break
    calls = block_calls(fastest)
    if device.type == "cuda":
        return BlockTimer(cuda_event_timer(device, calls), f"cuda_event_blocked x{calls}", calls)
    if calls == 1:
        timer, name = timer_for(device)
        return BlockTimer(timer, name, 1)
    return BlockTimer(cpu_blocked_timer(calls), f"perf_counter_ns_blocked x{calls}", calls)


def throughput_timer_for(
    device: torch.device, fn: Callable[[], Any], watchdog: Watchdog = UNWATCHED
) -> tuple[Timer, str]:
    """`sized_block_timer`'s timer and name."""
    block = sized_block_timer(device, fn, watchdog)
    return block.timer, block.name


def sample_until_stable(
    sample: Callable[[], float],
    settings: LoopSettings,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], str, float]:
    """Call `sample()` (one measurement in ms) until the stopping rule says enough.

    Returns (samples in call order, stop reason, seconds spent). A sample the watchdog cuts
    ends the loop with the samples before it (STOP_CUT); CallCut passes when there are none.
    """
    samples: list[float] = []
    ordered: list[float] = []
    started = clock()
    while True:
        try:
            value = sample()
        except CallCut:
            if not samples:
                raise
            return samples, STOP_CUT, clock() - started
        samples.append(value)
        bisect.insort(ordered, value)
        elapsed = clock() - started
        n = len(samples)
        if n >= settings.max_iters:
            return samples, STOP_MAX_ITERS, elapsed
        if n < settings.min_iters or elapsed < settings.min_time_s:
            continue
        half = median_ci_halfwidth(ordered)
        if half is not None and half <= settings.target_ci:
            return samples, STOP_CI, elapsed
        if elapsed >= settings.max_time_s:
            return samples, settings.cap_reason, elapsed


def warmup_after_cold(settings: LoopSettings, cold_ms: float | None) -> int:
    """The warmup calls to make after a cold call: none once the cold call alone outlasted the
    loop's whole cap (it warmed what a warmup would, and a slow model then costs one call less
    per loop)."""
    if cold_ms is not None and cold_ms / 1000.0 > settings.max_time_s:
        return 0
    return settings.warmup_iters


def time_loop(
    fn: Callable[[], Any],
    settings: LoopSettings,
    timer: Timer = cpu_timer,
    timer_name: str = "perf_counter_ns",
    clock: Callable[[], float] = time.perf_counter,
    cold: bool = True,
    watchdog: Watchdog = UNWATCHED,
    calls_per_sample: int = 1,
) -> TimingResult:
    """Time `fn`: one cold call (unless `cold` is False: fn already ran), `warmup_iters` untimed
    calls (none after a cold call longer than the cap), then samples until the stopping rule of
    `settings`. Every call runs under `watchdog`: CallCut when it cuts one before the first
    sample, else the samples so far with STOP_CUT. `calls_per_sample`: the calls `timer` makes
    per sample, as the result records it (`block_calls`)."""
    with watchdog:
        cold_ms = watchdog.call(timer, fn) if cold else None
        warmup = warmup_after_cold(settings, cold_ms)
        for _ in range(warmup):
            watchdog.call(fn)
        samples, reason, elapsed = sample_until_stable(
            lambda: watchdog.call(timer, fn), settings, clock
        )
    return TimingResult(
        cold_start_ms=cold_ms,
        warmup_iters=warmup,
        stats=Stats.from_samples(samples, "ms"),
        timer=timer_name,
        stop_reason=reason,
        elapsed_s=elapsed,
        block_calls=calls_per_sample,
    )


Sample = Callable[[], tuple[float, ...]]  # one call, timed in one or more parts (ms)


@dataclass(frozen=True)
class PairedLoop:
    """Two callables timed in alternating rounds (A B, B A, A B, ...): each round gives one
    sample of each and their ratio, so slow drift of the machine hits both sides alike."""

    samples_a: list[tuple[float, ...]]
    samples_b: list[tuple[float, ...]]
    ratios: list[tuple[float, ...]]  # per round, a / b for each timed part
    stop_reason: str
    elapsed_s: float


def paired_loop(
    sample_a: Sample,
    sample_b: Sample,
    settings: LoopSettings,
    clock: Callable[[], float] = time.perf_counter,
    watchdog: Watchdog = UNWATCHED,
) -> PairedLoop:
    """Warm both, then rounds of one sample each in ABBA order until the median of the
    per-round ratios (last part) is known to +-target_ci (95% interval, order statistics), or
    the cap (twice max_time_s: two pipelines share it) runs out. A call the watchdog cuts ends
    the loop with the whole rounds before it (STOP_CUT); CallCut passes when there are none."""
    a: list[tuple[float, ...]] = []
    b: list[tuple[float, ...]] = []
    ratios: list[tuple[float, ...]] = []
    ordered: list[float] = []
    with watchdog:
        for _ in range(settings.warmup_iters):
            watchdog.call(sample_a)
            watchdog.call(sample_b)
        started = clock()
        while True:
            try:
                sa, sb = _round(sample_a, sample_b, len(a) % 2 == 0, watchdog)
            except CallCut:
                if not a:
                    raise
                return PairedLoop(a, b, ratios, STOP_CUT, clock() - started)
            stop = _record_round(a, b, ratios, ordered, sa, sb, settings, clock() - started)
            if stop is not None:
                return PairedLoop(a, b, ratios, stop, clock() - started)


def _round(
    sample_a: Sample, sample_b: Sample, a_first: bool, watchdog: Watchdog
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """One round: A then B, or B then A."""
    if a_first:
        sa = watchdog.call(sample_a)
        return sa, watchdog.call(sample_b)
    sb = watchdog.call(sample_b)
    return watchdog.call(sample_a), sb


def _record_round(
    a: list[tuple[float, ...]],
    b: list[tuple[float, ...]],
    ratios: list[tuple[float, ...]],
    ordered: list[float],
    sa: tuple[float, ...],
    sb: tuple[float, ...],
    settings: LoopSettings,
    elapsed: float,
) -> str | None:
    """Keep one round; the stop reason once the rule says enough, else None."""
    a.append(sa)
    b.append(sb)
    ratio = tuple(x / y if y > 0 else float("inf") for x, y in zip(sa, sb, strict=True))
    ratios.append(ratio)
    bisect.insort(ordered, ratio[-1])
    n = len(a)
    if n >= settings.max_iters:
        return STOP_MAX_ITERS
    if n < settings.min_iters or elapsed < 2 * settings.min_time_s:
        return None
    half = median_ci_halfwidth(ordered)
    if half is not None and half <= settings.target_ci:
        return STOP_CI
    if elapsed >= 2 * settings.max_time_s:
        return settings.cap_reason
    return None

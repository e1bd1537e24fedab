"""Wall-clock timing loops: a cold call, warmup, then samples until the median is known well
enough (or a time cap ends the loop), with the reason the loop stopped recorded.

CPU timing uses perf_counter_ns. CUDA timing records events around the call on the current
stream and waits for the end event, so each sample covers the GPU work the call queued.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
STOP_REASONS = (STOP_CI, STOP_TIME_CAP, STOP_BUDGET, STOP_MAX_ITERS)

Timer = Callable[[Callable[[], Any]], float]  # runs fn once, returns milliseconds


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


def throughput_timer_for(device: torch.device, fn: Callable[[], Any]) -> tuple[Timer, str]:
    """The timer for throughput-like figures: blocks of calls per sample, sized from one call
    of `fn` so a block spans >= BLOCK_MS (like torch.utils.benchmark's blocked_autorange).
    CUDA: one synchronisation per block. CPU: a call shorter than BLOCK_MS is timed in blocks
    too, so allocator page faults and timer jitter average out inside a sample (a 0.7 ms
    batched preprocessing call varied +-20% sample to sample, a block of 15 a few %); a longer
    call keeps the per-call timer. `fn` runs once (CUDA) or twice (CPU: the first may be cold)
    to size the block."""
    if device.type != "cuda":
        fn()
        calls = block_calls(cpu_timer(fn))
        if calls == 1:
            return timer_for(device)
        return cpu_blocked_timer(calls), f"perf_counter_ns_blocked x{calls}"
    calls = block_calls(cuda_event_timer(device)(fn))
    return cuda_event_timer(device, calls), f"cuda_event_blocked x{calls}"


def sample_until_stable(
    sample: Callable[[], float],
    settings: LoopSettings,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], str, float]:
    """Call `sample()` (one measurement in ms) until the stopping rule says enough.

    Returns (samples in call order, stop reason, seconds spent).
    """
    samples: list[float] = []
    ordered: list[float] = []
    started = clock()
    while True:
        value = sample()
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


def time_loop(
    fn: Callable[[], Any],
    settings: LoopSettings,
    timer: Timer = cpu_timer,
    timer_name: str = "perf_counter_ns",
    clock: Callable[[], float] = time.perf_counter,
    cold: bool = True,
) -> TimingResult:
    """Time `fn`: one cold call (unless `cold` is False: fn already ran), `warmup_iters` untimed
    calls, then samples until the stopping rule of `settings`."""
    cold_ms = timer(fn) if cold else None
    for _ in range(settings.warmup_iters):
        fn()
    samples, reason, elapsed = sample_until_stable(lambda: timer(fn), settings, clock)
    return TimingResult(
        cold_start_ms=cold_ms,
        warmup_iters=settings.warmup_iters,
        stats=Stats.from_samples(samples, "ms"),
        timer=timer_name,
        stop_reason=reason,
        elapsed_s=elapsed,
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
) -> PairedLoop:
    """Warm both, then rounds of one sample each in ABBA order until the median of the
    per-round ratios (last part) is known to +-target_ci (95% interval, order statistics), or
    the cap (twice max_time_s: two pipelines share it) runs out."""
    for _ in range(settings.warmup_iters):
        sample_a()
        sample_b()
    a: list[tuple[float, ...]] = []
    b: list[tuple[float, ...]] = []
    ratios: list[tuple[float, ...]] = []
    ordered: list[float] = []
    started = clock()
    while True:
        if len(a) % 2 == 0:
            sa = sample_a()
            sb = sample_b()
        else:
            sb = sample_b()
            sa = sample_a()
        a.append(sa)
        b.append(sb)
        ratio = tuple(x / y if y > 0 else float("inf") for x, y in zip(sa, sb, strict=True))
        ratios.append(ratio)
        bisect.insort(ordered, ratio[-1])
        elapsed = clock() - started
        n = len(a)
        if n >= settings.max_iters:
            return PairedLoop(a, b, ratios, STOP_MAX_ITERS, elapsed)
        if n < settings.min_iters or elapsed < 2 * settings.min_time_s:
            continue
        half = median_ci_halfwidth(ordered)
        if half is not None and half <= settings.target_ci:
            return PairedLoop(a, b, ratios, STOP_CI, elapsed)
        if elapsed >= 2 * settings.max_time_s:
            return PairedLoop(a, b, ratios, settings.cap_reason, elapsed)

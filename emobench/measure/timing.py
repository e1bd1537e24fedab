"""Wall-clock timing loops: warmup, then measure until a minimum count and time are reached.

CPU timing uses perf_counter_ns. CUDA timing records events around the call on the current
stream and waits for the end event, so each sample covers the GPU work the call queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from emobench.measure.stats import Stats

WARMUP_ITERS = 2
MIN_ITERS = 5
MIN_TIME_S = 1.0
MAX_ITERS = 100_000  # a guard against a zero-cost callable spinning for ever

Timer = Callable[[Callable[[], Any]], float]  # runs fn once, returns milliseconds


@dataclass(frozen=True)
class LoopSettings:
    warmup_iters: int = WARMUP_ITERS
    min_iters: int = MIN_ITERS
    min_time_s: float = MIN_TIME_S


@dataclass(frozen=True)
class TimingResult:
    """Timing of one callable: the first (cold) call, the warmup count and the timed samples."""

    cold_start_ms: float
    warmup_iters: int
    stats: Stats  # unit "ms" per call
    timer: str  # "perf_counter_ns" or "cuda_event"


def cpu_timer(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def cuda_event_timer(device: torch.device) -> Timer:
    def timer(fn: Callable[[], Any]) -> float:
        torch.cuda.synchronize(device)  # nothing queued earlier leaks into this sample
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timer


def timer_for(device: torch.device) -> tuple[Timer, str]:
    if device.type == "cuda":
        return cuda_event_timer(device), "cuda_event"
    return cpu_timer, "perf_counter_ns"


def time_loop(
    fn: Callable[[], Any],
    settings: LoopSettings,
    timer: Timer = cpu_timer,
    timer_name: str = "perf_counter_ns",
    clock: Callable[[], float] = time.perf_counter,
) -> TimingResult:
    """Time `fn`: one cold call, `warmup_iters` untimed calls, then samples until both minimums."""
    cold = timer(fn)
    for _ in range(settings.warmup_iters):
        fn()
    samples: list[float] = []
    started = clock()
    while len(samples) < MAX_ITERS and (
        len(samples) < settings.min_iters or clock() - started < settings.min_time_s
    ):
        samples.append(timer(fn))
    return TimingResult(
        cold_start_ms=cold,
        warmup_iters=settings.warmup_iters,
        stats=Stats.from_samples(samples, "ms"),
        timer=timer_name,
    )

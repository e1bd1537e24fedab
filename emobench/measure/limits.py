"""The device's own limits, measured in the same run: dense matmul rate and memory copy bandwidth.

Efficiency = what a pipeline achieved / what this device did on a plain matmul or copy, so
"how far from the limit" needs no spec sheet and holds for the precision actually used.

Problem sizes are picked on the device: each grows (doubling) until one call takes a few
milliseconds or reaches its cap, and everything together stays within LIMITS_TIME_S, so a slow
device (emulated bf16, an old CPU) costs the same bounded time as a fast one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from emobench.measure.timing import LoopSettings, Timer, time_loop

LIMITS_TIME_S = 2.0  # all limits together, on any machine
TARGET_CALL_MS = 5.0  # grow a problem until one call takes at least this long
MIN_LIMIT_SAMPLES = 3
SIZING_CALLS = 3
MATMUL_N = {"cuda": (256, 8192), "cpu": (64, 2048)}  # (first, largest) square size
COPY_BYTES = {"cuda": (1 << 20, 1 << 30), "cpu": (1 << 16, 256 << 20)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceLimits:
    matmul_flops_per_s: float  # best of the timed samples: the device's demonstrated rate
    matmul_dtype: str
    matmul_n: int  # the square size picked on this device
    copy_bytes_per_s: float  # bytes read + bytes written per second, best sample
    copy_bytes: int  # the buffer size picked on this device
    elapsed_s: float | None = None  # sizing and timing, both limits


def _doubling(first: int, last: int) -> Iterator[int]:
    size = first
    while size < last:
        yield size
        size *= 2
    yield last


def _sized(
    make: Callable[[int], Callable[[], Any]],
    sizes: Iterator[int],
    timer: Timer,
    deadline: float,
    clock: Callable[[], float],
) -> tuple[int, Callable[[], Any], list[float]]:
    """The first size whose warm call takes TARGET_CALL_MS (best of up to SIZING_CALLS, since a
    lone call can be delayed by thread-pool start-up), or the last one tried when the cap or the
    deadline comes first. Returns (size, its call, the warm samples taken at that size)."""
    size, fn = 0, None
    warm: list[float] = []
    for size in sizes:
        fn = make(size)
        timer(fn)  # first touch of fresh buffers is not the device's rate
        warm = []
        while len(warm) < SIZING_CALLS and (not warm or clock() < deadline):
            warm.append(timer(fn))
        if min(warm) >= TARGET_CALL_MS or clock() >= deadline:
            break
    assert fn is not None
    return size, fn, warm


def _best_ms(
    fn: Callable[[], Any],
    timer: Timer,
    seconds: float,
    have: list[float],
    clock: Callable[[], float],
) -> float:
    """The best call time: the sizing samples, topped up to MIN_LIMIT_SAMPLES while time is left
    (and beyond, within `seconds`)."""
    if seconds <= 0:
        return min(have)
    settings = LoopSettings(
        warmup_iters=0,
        min_iters=max(1, MIN_LIMIT_SAMPLES - len(have)),
        max_time_s=seconds,
        target_ci=0.0,
    )
    return min(have + time_loop(fn, settings, timer, clock=clock, cold=False).stats.samples)


def matmul_call(device: torch.device, dtype: torch.dtype, n: int) -> Callable[[], Any]:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b)


def copy_call(device: torch.device, size: int) -> Callable[[], Any]:
    src = torch.empty(size, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def measure_limits(
    device: torch.device,
    precision: str,
    timer: Timer,
    time_s: float = LIMITS_TIME_S,
    clock: Callable[[], float] = time.perf_counter,
) -> DeviceLimits:
    """Matmul rate and copy bandwidth, each sized and timed within half of `time_s`."""
    dtype = DTYPES[precision]
    half = time_s / 2

    def matmul(n: int) -> Callable[[], Any]:
        return matmul_call(device, dtype, n)

    def copy(size: int) -> Callable[[], Any]:
        return copy_call(device, size)

    first, last = MATMUL_N.get(device.type, MATMUL_N["cpu"])
    matmul(first)()  # one-time library initialisation (BLAS, oneDNN, cuBLAS) is not sizing time
    started = clock()
    n, mm, warm = _sized(matmul, _doubling(first, last), timer, started + half / 2, clock)
    mm_ms = _best_ms(mm, timer, started + half - clock(), warm, clock)
    del mm
    copy_started = clock()
    first, last = COPY_BYTES.get(device.type, COPY_BYTES["cpu"])
    size, cp, warm = _sized(copy, _doubling(first, last), timer, copy_started + half / 2, clock)
    copy_ms = _best_ms(cp, timer, copy_started + half - clock(), warm, clock)
    return DeviceLimits(
        matmul_flops_per_s=2 * n**3 / (mm_ms / 1000),
        matmul_dtype=precision,
        matmul_n=n,
        copy_bytes_per_s=2 * size / (copy_ms / 1000),
        copy_bytes=size,
        elapsed_s=clock() - started,
    )

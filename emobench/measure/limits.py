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
from contextlib import contextmanager
from typing import Any

import torch

from emobench.measure.timing import LoopSettings, Timer, time_loop
from emobench.results.measurements import DeviceLimits

LIMITS_TIME_S = 2.0  # all limits together, on any machine
TARGET_CALL_MS = 5.0  # grow a problem until one call takes at least this long
MIN_LIMIT_SAMPLES = 3
SIZING_CALLS = 3
MATMUL_N = {"cuda": (256, 8192), "cpu": (64, 2048)}  # (first, largest) square size
COPY_BYTES = {"cuda": (1 << 20, 1 << 30), "cpu": (1 << 16, 256 << 20)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


def copy_call(
    device: torch.device, size: int, src_device: torch.device | None = None
) -> Callable[[], Any]:
    """dst.copy_(src) of `size` bytes; with `src_device`, from pinned host memory (H2D)."""
    source = src_device or device
    src = torch.empty(size, dtype=torch.uint8, device=source).fill_(1)
    if source.type == "cpu" and device.type == "cuda":
        src = src.pin_memory()
    dst = torch.empty(size, dtype=torch.uint8, device=device)
    return lambda: dst.copy_(src, non_blocking=src.is_pinned())


def _rate(
    make: Callable[[int], Callable[[], Any]],
    first_last: tuple[int, int],
    timer: Timer,
    time_s: float,
    clock: Callable[[], float],
) -> tuple[int, float]:
    """(size picked, best ms per call) within `time_s`: half sizing, the rest sampling."""
    started = clock()
    size, fn, warm = _sized(make, _doubling(*first_last), timer, started + time_s / 2, clock)
    return size, _best_ms(fn, timer, started + time_s - clock(), warm, clock)


@contextmanager
def _matmul_tf32(allowed: bool | None) -> Iterator[None]:
    if allowed is None:
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def matmul_math(device: torch.device, precision: str) -> str:
    """The math the model's convolutions use, which the reference matmul must use too: on CUDA
    in fp32, cuDNN convolutions run in TF32 while cudnn.allow_tf32 is set (torch's default)."""
    if precision != "fp32":
        return precision
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee fp32"


def measure_limits(
    device: torch.device,
    precision: str,
    timer: Timer,
    time_s: float = LIMITS_TIME_S,
    clock: Callable[[], float] = time.perf_counter,
    host_timer: Timer | None = None,
) -> DeviceLimits:
    """Matmul rate (in the model's math mode) and copy bandwidth, sized and timed within
    `time_s`; on CUDA also the host's memcpy and pinned host-to-device bandwidth, for the host
    work and the copy part of preprocessing (`host_timer` times host work)."""
    dtype = DTYPES[precision]
    cuda = device.type == "cuda"
    share = time_s / (4 if cuda else 2)
    math_mode = matmul_math(device, precision)
    tf32 = (math_mode == "tf32") if cuda and precision == "fp32" else None

    def matmul(n: int) -> Callable[[], Any]:
        return matmul_call(device, dtype, n)

    first, last = MATMUL_N.get(device.type, MATMUL_N["cpu"])
    started = clock()
    with _matmul_tf32(tf32):
        matmul(first)()  # one-time library initialisation (BLAS, oneDNN, cuBLAS)
        n, mm_ms = _rate(matmul, (first, last), timer, share, clock)
    copy_range = COPY_BYTES.get(device.type, COPY_BYTES["cpu"])
    size, copy_ms = _rate(lambda b: copy_call(device, b), copy_range, timer, share, clock)
    host = h2d = None
    if cuda:
        cpu = torch.device("cpu")
        host = _rate(
            lambda b: copy_call(cpu, b), COPY_BYTES["cpu"], host_timer or timer, share, clock
        )
        h2d = _rate(lambda b: copy_call(device, b, cpu), copy_range, timer, share, clock)
    return DeviceLimits(
        matmul_flops_per_s=2 * n**3 / (mm_ms / 1000),
        matmul_dtype=precision,
        matmul_n=n,
        copy_bytes_per_s=2 * size / (copy_ms / 1000),
        copy_bytes=size,
        elapsed_s=clock() - started,
        matmul_math=math_mode,
        host_copy_bytes_per_s=2 * host[0] / (host[1] / 1000) if host else None,
        h2d_bytes_per_s=h2d[0] / (h2d[1] / 1000) if h2d else None,
    )

"""The device's own limits, measured in the same run: dense matmul rate and memory copy bandwidth.

Efficiency = what a pipeline achieved / what this device did on a plain matmul or copy, so
"how far from the limit" needs no spec sheet and holds for the precision actually used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emobench.measure.timing import LoopSettings, Timer, time_loop

MATMUL_N = {"cuda": 8192, "cpu": 2048}
COPY_BYTES = {"cuda": 1 << 30, "cpu": 256 << 20}
LIMIT_LOOP = LoopSettings(warmup_iters=2, min_iters=5, min_time_s=0.5)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceLimits:
    matmul_flops_per_s: float  # best of the timed samples: the device's demonstrated rate
    matmul_dtype: str
    matmul_n: int
    copy_bytes_per_s: float  # bytes read + bytes written per second, best sample
    copy_bytes: int


def measure_limits(
    device: torch.device, precision: str, timer: Timer, settings: LoopSettings = LIMIT_LOOP
) -> DeviceLimits:
    n = MATMUL_N.get(device.type, 1024)
    size = COPY_BYTES.get(device.type, 256 << 20)
    return DeviceLimits(
        matmul_flops_per_s=2
        * n**3
        / (_matmul_ms(device, DTYPES[precision], n, timer, settings) / 1000),
        matmul_dtype=precision,
        matmul_n=n,
        copy_bytes_per_s=2 * size / (_copy_ms(device, size, timer, settings) / 1000),
        copy_bytes=size,
    )


def _matmul_ms(
    device: torch.device, dtype: torch.dtype, n: int, timer: Timer, settings: LoopSettings
) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return time_loop(lambda: torch.mm(a, b), settings, timer).stats.min


def _copy_ms(device: torch.device, size: int, timer: Timer, settings: LoopSettings) -> float:
    src = torch.empty(size, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    return time_loop(lambda: dst.copy_(src), settings, timer).stats.min

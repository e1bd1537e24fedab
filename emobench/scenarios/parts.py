"""Measurement pieces the one-pipeline and the interleaved paths share: the CPU's shared
model-only/end-to-end loop, per-batch records, efficiency and the NVML pass."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from emobench.measure import nvml as nvml_mod
from emobench.measure.contention import nvml_other_processes
from emobench.measure.flops import Layer, layer_shapes
from emobench.measure.limits import CeilingPlan, DeviceLimits, ceiling_plan
from emobench.measure.timing import (
    UNWATCHED,
    LoopSettings,
    TimingResult,
    Watchdog,
    sample_until_stable,
    warmup_after_cold,
)
from emobench.results import BatchTiming, Efficiency, MemoryResult, PreprocessResult
from emobench.runtimes.torch import PER_IMAGE_PATH, Pipeline
from emobench.stats.summary import Stats

SHARED_TIMER = "perf_counter_ns, one loop for model-only and end-to-end"


def _batch_timing(batch_size: int, timing: TimingResult) -> BatchTiming:
    """A timed batch with its rate in images per second."""
    return BatchTiming(
        batch_size=batch_size,
        images_per_s=batch_size / (timing.stats.median / 1000.0),
        timing=timing,
    )


def _preprocess_result(path: str, n: int, t: TimingResult) -> PreprocessResult:
    """A preprocessing path's timing of `n` images, per image in microseconds."""
    us = t.stats.scaled(1000.0 / n, "us/image")
    return PreprocessResult(path, n, us, t.stop_reason, t.block_calls)


def _split_call(pipe: Pipeline, batch_u8: torch.Tensor) -> Callable[[], tuple[float, float]]:
    """One CPU call timed in two parts: (model only, end to end) in ms."""

    def call() -> tuple[float, float]:
        with torch.inference_mode():
            t0 = time.perf_counter_ns()
            x = pipe.preprocess_batched(batch_u8)
            t1 = time.perf_counter_ns()
            pipe.infer(x)
            t2 = time.perf_counter_ns()
        return (t2 - t1) / 1e6, (t2 - t0) / 1e6

    return call


def _shared_loop(
    pipe: Pipeline,
    batch_u8: torch.Tensor,
    settings: LoopSettings,
    warm: bool,
    watchdog: Watchdog = UNWATCHED,
) -> tuple[TimingResult, TimingResult]:
    """Model-only and end-to-end from the same calls (CPU): each call preprocesses the uint8
    batch, then runs the model, timing both parts; the stopping rule follows end to end. Every
    call runs under `watchdog` (see measure.timing.time_loop)."""
    model_only: list[float] = []
    split = _split_call(pipe, batch_u8)

    def one_call() -> float:
        model_ms, e2e_ms = watchdog.call(split)
        model_only.append(model_ms)
        return e2e_ms

    with watchdog:
        cold = None if warm else one_call()
        warmup = 0 if warm else warmup_after_cold(settings, cold)
        for _ in range(warmup):
            one_call()
        model_only.clear()
        e2e, reason, elapsed = sample_until_stable(one_call, settings)

    def result(samples: list[float], first: float | None) -> TimingResult:
        return TimingResult(
            cold_start_ms=first,
            warmup_iters=warmup,
            stats=Stats.from_samples(samples, "ms"),
            timer=SHARED_TIMER,
            stop_reason=reason,
            elapsed_s=elapsed,
            block_calls=1,
        )

    return result(model_only, None), result(e2e, cold)


def _efficiency(
    throughput: list[BatchTiming],
    flops: int | None,
    preprocess: list[PreprocessResult],
    memory: MemoryResult,
    limits: DeviceLimits | None,
) -> Efficiency | None:
    if limits is None or not throughput or flops is None:
        return None
    best = max(throughput, key=lambda b: b.images_per_s)
    achieved = flops * best.images_per_s
    # bytes each preprocessing path must read (uint8 48x48) and write (float 3xSxS) per image
    u8_bytes = 48 * 48
    per_image_bytes = u8_bytes + memory.input_bytes_per_image
    rates = {p.path: per_image_bytes / (p.us_per_image.median * 1e-6) for p in preprocess}
    fractions = {}
    for p in preprocess:
        seconds = p.us_per_image.median * 1e-6
        if p.path == PER_IMAGE_PATH:
            # host work: against the host's memcpy bandwidth, whatever the device
            host_bw = limits.host_copy_bytes_per_s or limits.copy_bytes_per_s
            fractions[p.path] = per_image_bytes / host_bw / seconds
        elif limits.h2d_bytes_per_s is not None:
            # CUDA: the uint8 copy over the bus, then the device-side read + write
            bound = u8_bytes / limits.h2d_bytes_per_s + per_image_bytes / limits.copy_bytes_per_s
            fractions[p.path] = bound / seconds
        else:
            fractions[p.path] = per_image_bytes / limits.copy_bytes_per_s / seconds
    # the run's compute ceiling; a report's limits from before it: the plain matmul rate
    ceiling = limits.ceiling_flops_per_s or limits.matmul_flops_per_s
    fraction = achieved / ceiling
    return Efficiency(
        batch_size=best.batch_size,
        achieved_flops_per_s=achieved,
        matmul_fraction=fraction,
        preprocess_bytes_per_s=rates,
        preprocess_copy_fraction=fractions,
        ceiling_kernel=limits.ceiling_kernel or f"matmul n={limits.matmul_n}",
        above_ceiling=fraction > 1,
    )


def ceiling_plan_for(
    build: Callable[..., torch.nn.Module],
    backbones: Sequence[str],
    pipelines: Sequence[str],
    num_classes: int,
    max_batch: int,
    channels_last: bool,
) -> CeilingPlan:
    """The compute ceiling's kernels for a run: every backbone x pipeline built by `build`
    (the run's build_model) on the meta device (no weights, no compute) and run once with
    forward hooks for its layers' shapes. A model that cannot be built or run there (a plugin)
    is noted, and its shapes left out."""
    from emobench.models import PIPELINES

    layers: dict[str, list[Layer]] = {}
    notes: list[str] = []
    for backbone in backbones:
        for pipeline in pipelines:
            owner = f"{backbone}/{pipeline}"
            try:
                with torch.device("meta"):
                    model = build(backbone, pipeline, num_classes=num_classes)
                    size = PIPELINES[pipeline]
                    x = torch.zeros(1, 3, size, size)
                model.eval()
                with torch.no_grad():
                    layers[owner] = layer_shapes(model, partial(model, x))
            except Exception as e:  # a plugin's failure here only costs its shapes
                notes.append(f"{owner}: layer shapes unknown on the meta device ({e!r:.80})")
    return ceiling_plan(layers, max_batch, channels_last, notes)


class _NoMonitor:
    """Stands in for an NVML monitor where there is none; its result is None."""

    result = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def monitor_pass(
    monitor: Any,
    fn: Callable[[], object],
    batch_size: int,
    limit_s: float = nvml_mod.ENERGY_MAX_WINDOW_S,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> nvml_mod.MonitorResult | None:
    """Back-to-back calls of `fn` inside an NVML monitor, after the timed loop rather than
    during it, for at least 2 s (see nvml.energy_pass; never past `limit_s`, the share of
    --time-budget left to it): the window, its calls and images and the energy counter's
    updates are recorded. None, with no call made, where there is no monitor."""
    if isinstance(monitor, _NoMonitor):
        return None
    if sync is None:
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    calls = nvml_mod.energy_pass(monitor, fn, limit_s, sync, clock)
    if monitor.result is None:
        return None
    return dataclasses.replace(monitor.result, calls=calls, images=calls * batch_size)


def _gpu_monitor(device: torch.device, wanted: bool) -> Any:
    """An NVML monitor for this CUDA device, or a no-op where NVML or CUDA is absent."""
    if not wanted or device.type != "cuda":
        return _NoMonitor()
    nvml = nvml_mod.load_nvml()
    if nvml is None:
        return _NoMonitor()
    handle = nvml_mod.handle_for_uuid(nvml, str(torch.cuda.get_device_properties(device).uuid))
    return nvml_mod.GpuMonitor(nvml, handle) if handle is not None else _NoMonitor()


def _gpu_process_probe(device: torch.device) -> Callable[[], int | None] | None:
    """A probe counting the other processes on this CUDA device (NVML); None without one."""
    if device.type != "cuda":
        return None
    nvml = nvml_mod.load_nvml()
    if nvml is None:
        return None
    handle = nvml_mod.handle_for_uuid(nvml, str(torch.cuda.get_device_properties(device).uuid))
    return nvml_other_processes(nvml, handle, os.getpid()) if handle is not None else None

"""Compose models, pipelines and measurements into a Report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch

from emobench import data as data_mod
from emobench.config import RunConfig, resolve_device
from emobench.measure.env import fingerprint
from emobench.measure.flops import count_flops, count_parameters
from emobench.measure.memory import peak_memory
from emobench.measure.timing import LoopSettings, TimingResult, time_loop, timer_for
from emobench.models import build_model
from emobench.pipelines import BATCHED_PATH, PER_IMAGE_PATH, Pipeline
from emobench.report import (
    BatchTiming,
    MemoryResult,
    PipelineResult,
    PreprocessResult,
    Report,
    Transfer,
)

# (description, steps done, steps in total)
ProgressFn = Callable[[str, int, int], None]


def _no_progress(_desc: str, _done: int, _total: int) -> None:
    return None


def load_input_images(config: RunConfig) -> np.ndarray:
    """The images every measurement uses: --data when given, else seeded synthetic ones."""
    needed = max(config.preprocess_images, *config.batch_sizes)
    if config.data is None:
        return data_mod.synthetic_images(needed, config.seed)
    return data_mod.cycle_to(data_mod.load_images(Path(config.data), limit=needed), needed)


class _Steps:
    def __init__(self, config: RunConfig, progress: ProgressFn) -> None:
        per_pipeline = 1  # build
        m = set(config.measurements)
        per_pipeline += int("latency" in m) + int("flops" in m) + 1  # + param count
        per_pipeline += len(config.batch_sizes) * (int("throughput" in m) + int("end_to_end" in m))
        per_pipeline += 2 * int("preprocess" in m) + int("memory" in m)
        self.total = per_pipeline * len(config.backbones) * len(config.pipelines)
        self.done = 0
        self.progress = progress

    def __call__(self, desc: str) -> None:
        self.progress(desc, self.done, self.total)
        self.done += 1


def run_benchmark(
    config: RunConfig, progress: ProgressFn = _no_progress, kind: str = "compare"
) -> Report:
    """Measure every backbone x pipeline in `config` and return the report (nothing is written)."""
    config.validate()
    started = time.perf_counter()
    device = resolve_device(config.device)
    images = load_input_images(config)
    environment = fingerprint(device)
    steps = _Steps(config, progress)
    results = [
        measure_pipeline(backbone, pipeline, config, device, images, steps)
        for backbone in config.backbones
        for pipeline in config.pipelines
    ]
    progress("done", steps.total, steps.total)
    return Report(
        kind=kind,
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=json.loads(json.dumps(config.to_dict())) | {"resolved_device": str(device)},
        environment=environment,
        results=results,
    )


def measure_pipeline(
    backbone: str,
    pipeline_name: str,
    config: RunConfig,
    device: torch.device,
    images: np.ndarray,
    step: Callable[[str], None],
) -> PipelineResult:
    tag = f"{backbone}/{pipeline_name}"
    wanted = set(config.measurements)
    step(f"{tag}: building model")
    model = build_model(
        backbone, pipeline_name, num_classes=config.num_classes, pretrained=config.pretrained
    )
    pipe = Pipeline(pipeline_name, model, device)
    settings = LoopSettings(config.warmup_iters, config.min_iters, config.min_time_s)
    timer, timer_name = timer_for(device)
    host = torch.from_numpy(images)
    if device.type == "cuda":
        host = host.pin_memory()

    def timed(fn: Callable[[], object]) -> TimingResult:
        return time_loop(fn, settings, timer, timer_name)

    x1 = pipe.preprocess_batched(host[:1])
    latency = None
    if "latency" in wanted:  # first, so its cold start is the model's first call
        step(f"{tag}: latency, batch 1")
        latency = timed(lambda: pipe.infer(x1))

    step(f"{tag}: parameter count")
    params = count_parameters(model, lambda: pipe.infer(x1))
    flops = None
    if "flops" in wanted:
        step(f"{tag}: FLOPs")
        flops = count_flops(lambda: pipe.infer(x1))

    throughput: list[BatchTiming] = []
    end_to_end: list[BatchTiming] = []
    for bs in config.batch_sizes:
        batch_u8 = host[:bs]
        if "throughput" in wanted:
            step(f"{tag}: throughput, batch {bs}")
            xb = pipe.preprocess_batched(batch_u8)
            throughput.append(_batch_timing(bs, timed(partial(pipe.infer, xb))))
            del xb
        if "end_to_end" in wanted:
            step(f"{tag}: end to end, batch {bs}")
            end_to_end.append(_batch_timing(bs, timed(partial(pipe.end_to_end, batch_u8))))

    preprocess: list[PreprocessResult] = []
    if "preprocess" in wanted:
        n = config.preprocess_images
        step(f"{tag}: preprocessing, per-image PIL path ({n} images)")
        t = timed(lambda: pipe.preprocess_per_image(images[:n]))
        preprocess.append(
            PreprocessResult(PER_IMAGE_PATH, n, t.stats.scaled(1000.0 / n, "us/image"))
        )
        step(f"{tag}: preprocessing, batched tensor path ({n} images)")
        t = timed(lambda: pipe.preprocess_batched(host[:n]))
        preprocess.append(PreprocessResult(BATCHED_PATH, n, t.stats.scaled(1000.0 / n, "us/image")))

    peak = None
    peak_bs = None
    if "memory" in wanted:
        peak_bs = max(config.batch_sizes)
        step(f"{tag}: peak memory, batch {peak_bs}")
        xb = pipe.preprocess_batched(host[:peak_bs])
        peak = peak_memory(lambda: pipe.infer(xb), device)
        del xb

    transfer = model.transfer
    assert transfer is not None
    return PipelineResult(
        backbone=backbone,
        pipeline=pipeline_name,
        input_size=pipe.input_size,
        feature_map=list(model.feature_map),
        transfer=Transfer(
            source=transfer.source,
            copied=list(transfer.copied),
            derived=dict(transfer.derived),
            fresh=list(transfer.fresh),
        ),
        params=params,
        flops_per_image=flops,
        latency=latency,
        throughput=throughput,
        end_to_end=end_to_end,
        preprocess=preprocess,
        memory=MemoryResult(
            input_bytes_per_image=x1[0].numel() * x1.element_size(),
            weight_bytes=sum(t.numel() * t.element_size() for t in model.state_dict().values()),
            peak_batch_size=peak_bs,
            peak=peak,
        ),
    )


def _batch_timing(batch_size: int, timing: TimingResult) -> BatchTiming:
    return BatchTiming(
        batch_size=batch_size,
        images_per_s=batch_size / (timing.stats.median / 1000.0),
        timing=timing,
    )

"""Compose models, pipelines and measurements into a Report."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emobench.config import RunConfig, is_plugin
from emobench.data import images as data_mod
from emobench.device import (
    apply_backend_settings,
    check_device_options,
    emulated_precision,
    resolve_device,
)
from emobench.errors import ModelError
from emobench.measure import nvml as nvml_mod
from emobench.measure.contention import ContentionMonitor
from emobench.measure.env import fingerprint
from emobench.measure.flops import ParamCounts, count_flops, count_parameters
from emobench.measure.limits import measure_limits
from emobench.measure.memory import peak_memory
from emobench.measure.timing import (
    LoopSettings,
    Timer,
    TimingResult,
    Watchdog,
    cpu_timer,
    throughput_timer_for,
    time_loop,
    timer_for,
)
from emobench.models import EmotionNet, build_model, check_backbone
from emobench.results import (
    BatchTiming,
    MemoryResult,
    PairedRatio,
    PipelineResult,
    PreprocessResult,
    Report,
    TrainResult,
    TransferResult,
)
from emobench.results.measurements import Contention
from emobench.results.metrics import DIRECT, UPSCALE
from emobench.results.progress import ProgressFn
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.context import Deferred, RunContext
from emobench.scenarios.paired import paired_headline
from emobench.scenarios.parts import SHARED_TIMER as SHARED_TIMER  # re-exported: tests use it
from emobench.scenarios.parts import (
    _batch_timing,
    _efficiency,
    _gpu_monitor,
    _gpu_process_probe,
    _shared_loop,
    monitor_pass,
)
from emobench.scenarios.parts import _NoMonitor as _NoMonitor  # re-exported: tests use it
from emobench.scenarios.pipeline_steps import (
    _compile,
    _eager_forward,
    _preprocess,
    _to_device,
    _train,
    _transfer_record,
)
from emobench.scenarios.steps import (
    COMPILE,
    END_TO_END,
    LATENCY,
    LIMITS,
    MEMORY,
    PREPROCESS_PER_IMAGE,
    SHARED,
    THROUGHPUT,
    TRAIN,
    TRANSFER,
    Budget,
    Step,
    Steps,
    loop_settings,
    step_plan,
)

HOST_ONLY_NOTE = "host-to-device transfer: not applicable (host only, device is the CPU)"
COMPILE_EAGER_NOTE = (
    "with --compile, parameter use, FLOPs and peak memory are measured on the eager model "
    "(torch's dispatch-mode trackers do not see inside compiled graphs); timings are compiled"
)


def measure_order(config: RunConfig) -> list[tuple[str, str]]:
    """Backbone by backbone, with the pipeline order reversed for every other backbone, so no
    pipeline is always the one that runs first (recorded in the report)."""
    order = []
    for i, backbone in enumerate(config.backbones):
        pipelines = config.pipelines if i % 2 == 0 else tuple(reversed(config.pipelines))
        order += [(backbone, p) for p in pipelines]
    return order


def pay_one_time_costs(device: torch.device, modes: tuple[str, ...] = ("infer",)) -> None:
    """Run each kind of op the pipelines use once on a throwaway tensor: library and kernel
    initialisation (oneDNN, cuDNN/cuBLAS handles, lazy module loading, thread pools) is then
    paid here, not by whichever pipeline happens to make the first call."""
    x = torch.rand(2, 3, 16, 16, device=device)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).to(device)
    linear = torch.nn.Linear(4, 3).to(device)
    with torch.inference_mode():
        up = F.interpolate(x[:, :1], size=(32, 32), mode="bilinear", align_corners=False)
        h = F.max_pool2d(F.relu(conv(up.expand(-1, 3, -1, -1))), 2)
        linear(F.adaptive_avg_pool2d(h, 1).flatten(1))
    if "train" in modes:
        out = linear(F.adaptive_avg_pool2d(conv(x), 1).flatten(1))
        F.cross_entropy(out, torch.zeros(2, dtype=torch.long, device=device)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_compiled(device: torch.device) -> None:
    """Forget every compiled graph (and a reduce-overhead CUDA-graph pool) before the next
    pipeline, so it neither reuses the previous one's guards nor sees its memory in its peaks."""
    import gc

    import torch._dynamo

    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _no_progress(_desc: str, _done: int, _total: int) -> None:
    return None


def preflight(config: RunConfig) -> torch.device:
    """Validate the config against this machine before any model is built: the settings, a
    plugin backbone's module and models (on the meta device), the device's capabilities."""
    config.validate()
    for backbone in filter(is_plugin, config.backbones):
        check_backbone(backbone, num_classes=config.num_classes)
    device = resolve_device(config.device)
    check_device_options(config, device)
    return device


def load_input_images(config: RunConfig) -> np.ndarray:
    """The images every measurement uses: --data when given, else seeded synthetic ones."""
    return data_mod.input_images(config.data, config.seed, config.images_needed)


def run_benchmark(
    config: RunConfig,
    progress: ProgressFn = _no_progress,
    kind: str = "compare",
    images: np.ndarray | None = None,
) -> Report:
    """Measure every backbone x pipeline in `config` and return the report (nothing is written).

    `images` are the inputs already loaded by `load_input_images(config)`, if the caller has them.
    """
    started = time.perf_counter()
    device = preflight(config)
    if images is None:
        images = load_input_images(config)
    with device_scope(device):
        return _run(config, device, images, progress, kind, started)


def device_scope(device: torch.device) -> AbstractContextManager[Any]:
    """Make `device` the current CUDA device for the whole run: streams, events, allocations
    and kernels default to the current device, so on cuda:1 nothing lands on cuda:0."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    return nullcontext()


def _run(
    config: RunConfig,
    device: torch.device,
    images: np.ndarray,
    progress: ProgressFn,
    kind: str,
    started: float,
) -> Report:
    """Take the plan's steps, then assemble the report."""
    settings_in_force = apply_backend_settings(config)
    environment = fingerprint(device)
    plan = step_plan(config, device)
    steps = Steps(plan, progress)
    steps.monitor = ContentionMonitor(_gpu_process_probe(device))
    ctx = RunContext(config, device, plan, steps, Budget(config.time_budget_s))
    if Step(LIMITS) in plan.run:
        steps(f"device limits: {config.precision} matmul rate and copy bandwidth")
        timer, _ = timer_for(device)
        ctx.limits = measure_limits(
            device, config.precision, timer, config.limits_time_s, host_timer=cpu_timer
        )
    steps("one-time library initialisation (not counted in any pipeline's cold start)")
    pay_one_time_costs(device, config.modes)
    order = measure_order(config)
    results, paired = _measure_all(ctx, order, images)
    contention = steps.monitor.finish()
    progress("done", steps.total, steps.total)
    emulated = emulated_precision(config.precision, device)
    notes = _notes(ctx, results, contention, emulated)
    return Report(
        kind=kind,
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=json.loads(json.dumps(config.to_dict()))
        | {
            "resolved_device": str(device),
            "in_force": settings_in_force,
            "precision_emulated": emulated is not None,
            "measure_order": [f"{b}/{p}" for b, p in order],
        },
        environment=environment,
        results=results,
        limits=ctx.limits,
        notes=notes,
        contention=contention,
        budget=ctx.budget.record(),
        paired=paired,
    )


def _measure_all(
    ctx: RunContext, order: list[tuple[str, str]], images: np.ndarray
) -> tuple[list[PipelineResult], list[PairedRatio]]:
    """Every backbone x pipeline in `order`, in the config's order; paired, each backbone's
    headline loops run once both its pipelines are set up."""
    config = ctx.config
    measured: dict[tuple[str, str], PipelineResult] = {}
    paired: list[PairedRatio] = []
    for backbone in config.backbones:
        for pipeline in [p for b, p in order if b == backbone]:
            try:
                measured[backbone, pipeline] = measure_pipeline(backbone, pipeline, ctx, images)
            finally:
                if config.compile != "none":
                    release_compiled(ctx.device)
        if ctx.defer:
            up, dn, ratios = paired_headline(
                backbone, measured[backbone, UPSCALE], measured[backbone, DIRECT], ctx, images
            )
            measured[backbone, UPSCALE], measured[backbone, DIRECT] = up, dn
            paired += ratios
            ctx.deferred.clear()  # both models can go
    return [measured[b, p] for b in config.backbones for p in config.pipelines], paired


def _notes(
    ctx: RunContext, results: list[PipelineResult], contention: Contention, emulated: str | None
) -> list[str]:
    """The report's notes, in the order they are shown."""
    config = ctx.config
    notes = [COMPILE_EAGER_NOTE] if config.compile != "none" else []
    notes += [note for r in results if (note := placement_note(r))]
    if ctx.device.type != "cuda" and "transfer" in config.measurements:
        notes.append(HOST_ONLY_NOTE)
    if emulated:
        notes.append(f"precision {config.precision} is EMULATED here ({emulated})")
    if ctx.budget.exhausted_at:
        notes.append(
            f"--time-budget {config.time_budget_s:g} s ran out at: {ctx.budget.exhausted_at}; "
            "later measurements took only their minimum samples, and a call that ran past "
            "the budget (or, later, a measurement's grace) was cut"
        )
    notes += ctx.cuts
    if contention.busy:
        notes.append(contention.note)
    return notes


def placement_note(r: PipelineResult) -> str | None:
    """Which placement of the upscale got the largest batch onto the device faster."""
    largest = max((t.batch_size for t in r.to_device), default=None)
    at = {t.placement: t.total_ms for t in r.to_device if t.batch_size == largest}
    host = at.get("host_upscale_then_copy_f32")
    dev = at.get("copy_uint8_then_device_upscale")
    if host is None or dev is None:
        return None
    where = "on the device" if dev < host else "on the host"
    return (
        f"{r.backbone}/{r.pipeline} b{largest}: upscaling {where} is faster "
        f"({dev:.3g} ms copy uint8 + upscale on device vs {host:.3g} ms upscale on host + copy f32)"
    )


@dataclass
class _Bench:
    """One pipeline ready to measure: its model, inputs and clocks."""

    ctx: RunContext
    tag: str
    model: EmotionNet
    pipe: Pipeline
    host: torch.Tensor  # the uint8 source images (pinned on CUDA)
    x1: torch.Tensor  # one preprocessed image
    loop: LoopSettings
    timer: Timer
    timer_name: str

    @property
    def config(self) -> RunConfig:
        return self.ctx.config

    def timed(
        self, fn: Callable[[], object], warm: bool = False, blocked: bool = False
    ) -> TimingResult | None:
        """Time fn; `warm`: fn already ran at this size (no cold call, no warmup); `blocked`:
        a throughput-like figure (CUDA: blocks of calls per synchronisation). None when the
        run's watchdog cut a call before the first sample (the report's notes say why)."""
        settings = self.ctx.budget.settings(self.loop, self.ctx.steps)
        if warm:
            settings = dataclasses.replace(settings, warmup_iters=0)

        def measure(watchdog: Watchdog) -> TimingResult:
            clock, name = (self.timer, self.timer_name)
            if blocked:
                clock, name = throughput_timer_for(self.ctx.device, fn, watchdog)
            return time_loop(fn, settings, clock, name, cold=not warm, watchdog=watchdog)

        return self.ctx.watched(measure)


@dataclass
class _Inference:
    """What one pipeline's per-batch inference steps measured."""

    memory: MemoryResult
    throughput: list[BatchTiming] = field(default_factory=list)
    end_to_end: list[BatchTiming] = field(default_factory=list)
    monitor: nvml_mod.MonitorResult | None = None
    warm_batch: int | None = None  # the batch size the peak-memory call already warmed
    # inputs left referenced until the pipeline's result is built, so its train and transfer
    # steps run with them resident: the peak-memory call's batch, and the last batch unless
    # its loop dropped it
    peak_input: torch.Tensor | None = None
    last_input: torch.Tensor | None = None


def measure_pipeline(
    backbone: str,
    pipeline_name: str,
    ctx: RunContext,
    images: np.ndarray,
) -> PipelineResult:
    """One backbone x pipeline, in the steps the plan lists for a pipeline (paired: the
    headline loops are left to paired_headline, with both pipelines resident)."""
    bench = _setup(backbone, pipeline_name, ctx, images)
    memory = _sizes(bench)
    base = _identity(bench, backbone, pipeline_name)
    compile_s = None
    if Step(COMPILE) in ctx.plan.pipeline:
        compile_s, error = _compile_step(bench)
        if error is not None:
            return _compile_failed(bench, base, memory, error)
    latency, cold_ms = _latency(bench)
    params, flops = _counts(bench)
    preprocess = _preprocessing(bench, images)
    inference = _inference(bench, memory)
    if ctx.defer:
        ctx.deferred[pipeline_name] = Deferred(
            bench.pipe, bench.x1, bench.host, cold_ms, inference.warm_batch
        )
    train, to_device = _train_and_transfer(bench)
    efficiency = _efficiency(inference.throughput, flops, preprocess, inference.memory, ctx.limits)
    return PipelineResult(
        **base,
        params=params,
        flops_per_image=flops,
        preprocess=preprocess,
        latency=latency,
        throughput=inference.throughput,
        end_to_end=inference.end_to_end,
        memory=inference.memory,
        compile_s=compile_s,
        train=train,
        to_device=to_device,
        gpu_monitor=inference.monitor,
        efficiency=efficiency,
    )


def _setup(backbone: str, pipeline_name: str, ctx: RunContext, images: np.ndarray) -> _Bench:
    """Build the model and its pipeline; the inputs on the host (pinned on CUDA)."""
    config, device = ctx.config, ctx.device
    tag = f"{backbone}/{pipeline_name}"
    ctx.steps(f"{tag}: building model")
    model = build_model(
        backbone, pipeline_name, num_classes=config.num_classes, pretrained=config.pretrained
    )
    pipe = Pipeline(
        pipeline_name, model, device, config.precision, config.channels_last, config.num_classes
    )
    loop = loop_settings(config)
    timer, timer_name = timer_for(device)
    host = torch.from_numpy(images)
    if device.type == "cuda":
        host = host.pin_memory()
    x1 = pipe.preprocess_batched(host[:1])
    return _Bench(ctx, tag, model, pipe, host, x1, loop, timer, timer_name)


def _sizes(bench: _Bench) -> MemoryResult:
    """Input and weight bytes; the peak comes with the inference steps."""
    return MemoryResult(
        input_bytes_per_image=bench.x1[0].numel() * bench.x1.element_size(),
        weight_bytes=sum(t.numel() * t.element_size() for t in bench.model.state_dict().values()),
        peak_batch_size=None,
        peak=None,
    )


def _identity(bench: _Bench, backbone: str, pipeline_name: str) -> dict[str, Any]:
    """The fields that say which model this result is."""
    return {
        "backbone": backbone,
        "pipeline": pipeline_name,
        "input_size": bench.pipe.input_size,
        "feature_map": list(bench.model.feature_map),
        "transfer": _transfer_record(bench.model),
    }


def _compile_step(bench: _Bench) -> tuple[float | None, str | None]:
    """torch.compile: the seconds its first call took, or why the compiler failed."""
    mode = bench.config.compile
    bench.ctx.steps(f"{bench.tag}: torch.compile (mode {mode})")
    try:
        return _compile(bench.pipe, mode, bench.x1), None
    except Exception as exc:  # a compiler failure: report it, keep the other pipeline
        cause: BaseException = exc
        if isinstance(exc, ModelError) and exc.__cause__ is not None:
            cause = exc.__cause__  # the compiler's own error, raised in the first call
        lines = str(cause).splitlines() or [""]
        return None, f"torch.compile failed: {type(cause).__name__}: {lines[0][:300]}"


def _compile_failed(
    bench: _Bench, base: dict[str, Any], memory: MemoryResult, error: str
) -> PipelineResult:
    """The result of a pipeline the compiler failed on: its counts and the error."""
    params, flops = _counts(bench)
    return PipelineResult(
        **base,
        params=params,
        flops_per_image=flops,
        preprocess=[],
        latency=None,
        throughput=[],
        end_to_end=[],
        memory=memory,
        error=error,
    )


def _latency(bench: _Bench) -> tuple[TimingResult | None, float | None]:
    """Batch-1 latency, or (paired) only its cold start, the loop waiting for the other
    pipeline: (latency, cold start in ms)."""
    # before anything else runs the model, so its cold start is the model's first call
    plan = bench.ctx.plan
    if Step(LATENCY) in plan.paired:
        first = partial(bench.pipe.infer, bench.x1)
        what = f"{bench.tag}: cold start, batch 1"
        return None, bench.ctx.watched(lambda watchdog: watchdog.call(bench.timer, first), what)
    if Step(LATENCY) in plan.pipeline:
        bench.ctx.steps(f"{bench.tag}: latency, batch 1")
        return bench.timed(partial(bench.pipe.infer, bench.x1)), None
    return None, None


def _counts(bench: _Bench) -> tuple[ParamCounts, int | None]:
    """Parameter use and FLOPs per image, from one forward of the uncompiled model."""
    bench.ctx.steps(f"{bench.tag}: parameter count and FLOPs (one forward)")
    model = bench.model
    eager = partial(_eager_forward, model, bench.x1)  # counting needs the uncompiled model
    if "flops" not in bench.config.measurements:
        return count_parameters(model, eager), None
    flops: list[int] = []
    params = count_parameters(model, lambda: flops.append(count_flops(eager)))
    return params, flops[0]


def _preprocessing(bench: _Bench, images: np.ndarray) -> list[PreprocessResult]:
    """Both preprocessing paths, unless paired mode interleaves them with the other pipeline."""
    if Step(PREPROCESS_PER_IMAGE) not in bench.ctx.plan.pipeline:
        return []
    config, steps = bench.config, bench.ctx.steps
    return _preprocess(bench.pipe, images, bench.host, config, steps, bench.tag, bench.timed)


def _inference(bench: _Bench, memory: MemoryResult) -> _Inference:
    """Each batch size's inference steps (none without the infer mode)."""
    out = _Inference(memory)
    if "infer" in bench.config.modes:
        for bs in bench.config.batch_sizes:
            _infer_batch(bench, bs, out)
    return out


def _infer_batch(bench: _Bench, bs: int, out: _Inference) -> None:
    """Peak memory at the largest batch size, then throughput and end to end (paired: only
    the peak memory; the loops wait for the other pipeline)."""
    plan, step, tag, pipe = bench.ctx.plan, bench.ctx.steps, bench.tag, bench.pipe
    batch_u8 = bench.host[:bs]
    xb = out.last_input = pipe.preprocess_batched(batch_u8)
    warm = False
    measure_memory = bs == plan.memory_batch
    memo = " and peak memory" if measure_memory else ""
    if Step(MEMORY, bs) in plan.pipeline:
        step(f"{tag}: peak memory, batch {bs}")
    elif Step(SHARED, bs) in plan.pipeline:
        step(f"{tag}: throughput, end to end{memo}, batch {bs}")
    if measure_memory:
        # the peak-memory call is also this batch size's warmup
        out.memory = _peak_memory(bench, xb, bs, out.memory)
        out.peak_input = xb
        warm = bench.config.compile == "none" and out.memory.peak is not None
    if plan.interleaved:
        out.warm_batch = bs if warm else out.warm_batch
        return
    if Step(SHARED, bs) in plan.pipeline:
        settings = bench.ctx.budget.settings(bench.loop, step)
        shared = bench.ctx.watched(partial(_shared_loop, pipe, batch_u8, settings, warm))
        if shared is not None:
            out.throughput.append(_batch_timing(bs, shared[0]))
            out.end_to_end.append(_batch_timing(bs, shared[1]))
        return
    if Step(THROUGHPUT, bs) in plan.pipeline:
        step(f"{tag}: throughput, batch {bs}")
        timing = bench.timed(partial(pipe.infer, xb), warm, blocked=True)
        if timing is not None:
            out.throughput.append(_batch_timing(bs, timing))
            if bs == max(bench.config.batch_sizes):
                # NVML is sampled in a pass of its own: its thread never shares the GIL
                # with the launches of the timed loop
                out.monitor = _monitor(bench, partial(pipe.infer, xb), timing.stats.n, bs)
            warm = True
    del xb
    out.last_input = None
    if Step(END_TO_END, bs) in plan.pipeline:
        step(f"{tag}: end to end, batch {bs}")
        timing = bench.timed(partial(pipe.end_to_end, batch_u8), warm, True)
        if timing is not None:
            out.end_to_end.append(_batch_timing(bs, timing))


def _monitor(
    bench: _Bench, fn: Callable[[], object], calls: int, bs: int
) -> nvml_mod.MonitorResult | None:
    """The NVML pass after a throughput loop, its calls watched like the loop's."""
    monitor = _gpu_monitor(bench.ctx.device, True)
    return bench.ctx.watched(
        lambda watchdog: monitor_pass(monitor, partial(watchdog.call, fn), calls, bs)
    )


def _peak_memory(bench: _Bench, xb: torch.Tensor, bs: int, memory: MemoryResult) -> MemoryResult:
    """Inference peak memory of one call at batch size `bs` (the eager model under --compile)."""
    forward = partial(bench.pipe.infer, xb)
    if bench.config.compile != "none":
        forward = partial(_eager_forward, bench.model, xb, bench.pipe)
    held = [*bench.model.parameters(), *bench.model.buffers(), xb]
    device = bench.ctx.device
    peak = bench.ctx.watched(
        lambda watchdog: peak_memory(partial(watchdog.call, forward), device, held)
    )
    if peak is None:  # the call was cut: no peak (the notes say why)
        return memory
    return dataclasses.replace(memory, peak_batch_size=bs, peak=peak)


def _train_and_transfer(bench: _Bench) -> tuple[list[TrainResult], list[TransferResult]]:
    """The train steps (train mode) and the host-to-device transfers (CUDA), as planned."""
    plan, config, step, tag = bench.ctx.plan, bench.config, bench.ctx.steps, bench.tag
    train = []
    if plan.takes(TRAIN):
        train = _train(bench.pipe, config, step, tag, bench.timed, bench.ctx.watched)
    to_device = []
    if plan.takes(TRANSFER):
        to_device = _to_device(bench.pipe, bench.host, config, step, tag, bench.timed)
    return train, to_device

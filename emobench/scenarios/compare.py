"""Compose models, pipelines and measurements into a Report."""

from __future__ import annotations

import dataclasses
import json
import os
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

from emobench.config import RunConfig
from emobench.data import images as data_mod
from emobench.device import (
    apply_backend_settings,
    check_device_options,
    emulated_precision,
    resolve_device,
)
from emobench.measure import nvml as nvml_mod
from emobench.measure.contention import ContentionMonitor, nvml_other_processes
from emobench.measure.env import fingerprint
from emobench.measure.flops import ParamCounts, count_flops, count_parameters
from emobench.measure.limits import DeviceLimits, measure_limits
from emobench.measure.memory import peak_memory
from emobench.measure.timing import (
    STOP_BUDGET,
    LoopSettings,
    PairedLoop,
    Timer,
    TimingResult,
    cpu_timer,
    paired_loop,
    sample_until_stable,
    throughput_timer_for,
    time_loop,
    timer_for,
)
from emobench.models import build_model
from emobench.results import (
    BatchTiming,
    Efficiency,
    MemoryResult,
    PairedRatio,
    PipelineResult,
    PreprocessResult,
    Report,
    RunBudget,
    TrainResult,
    Transfer,
    TransferResult,
)
from emobench.results.metrics import DIRECT, UPSCALE
from emobench.results.progress import ProgressFn
from emobench.runtimes.torch import BATCHED_PATH, PER_IMAGE_PATH, Pipeline
from emobench.stats.summary import Stats

# (description, steps done, steps in total)
HOST_ONLY_NOTE = "host-to-device transfer: not applicable (host only, device is the CPU)"
SHARED_TIMER = "perf_counter_ns, one loop for model-only and end-to-end"
COMPILE_EAGER_NOTE = (
    "with --compile, parameter use, FLOPs and peak memory are measured on the eager model "
    "(torch's dispatch-mode trackers do not see inside compiled graphs); timings are compiled"
)


def loop_settings(config: RunConfig) -> LoopSettings:
    """The stopping rule a config asks for."""
    return LoopSettings(
        warmup_iters=config.warmup_iters,
        min_iters=config.min_iters,
        min_time_s=config.min_time_s,
        max_time_s=config.max_time_s,
        target_ci=config.target_ci,
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
    """Validate the config against this machine before any model is built."""
    config.validate()
    device = resolve_device(config.device)
    check_device_options(config, device)
    return device


def load_input_images(config: RunConfig) -> np.ndarray:
    """The images every measurement uses: --data when given, else seeded synthetic ones."""
    return data_mod.input_images(config.data, config.seed, config.images_needed)


class _Steps:
    def __init__(self, config: RunConfig, device: torch.device, progress: ProgressFn) -> None:
        m = set(config.measurements)
        n_bs = len(config.batch_sizes)
        infer = "infer" in config.modes
        # build, parameter count and FLOPs (+ compile)
        per_pipeline = 2 + int(config.compile != "none")
        headline = 2 * int("preprocess" in m)  # the loops that pairing interleaves
        if infer:
            headline += int("latency" in m)
            shared = device.type == "cpu" and {"throughput", "end_to_end"} <= m
            per_batch = 1 if shared else int("throughput" in m) + int("end_to_end" in m)
            headline += n_bs * per_batch
            per_pipeline += int("memory" in m and (per_batch == 0 or pairs(config)))
        if "train" in config.modes:
            per_pipeline += n_bs
        if device.type == "cuda" and "transfer" in m:
            per_pipeline += n_bs
        n_pipes = len(config.pipelines)
        per_backbone = per_pipeline * n_pipes + headline * (1 if pairs(config) else n_pipes)
        self.total = per_backbone * len(config.backbones)
        self.total += int("efficiency" in m) + 1  # + the one-time initialisation
        self.done = 0
        self.progress = progress
        self.current = "start"
        self.monitor: ContentionMonitor | None = None

    @property
    def left(self) -> int:
        """Steps not started yet, the current one included."""
        return max(1, self.total - self.done + 1)

    def __call__(self, desc: str) -> None:
        if self.monitor is not None:
            self.monitor.mark(desc)
        self.current = desc
        self.progress(desc, self.done, self.total)
        self.done += 1


class _Budget:
    """--time-budget: what is left is shared equally among the steps left."""

    def __init__(self, total_s: float | None, clock: Callable[[], float] = time.perf_counter):
        self.total_s = total_s
        self.clock = clock
        self.started = clock()
        self.exhausted_at: str | None = None

    def settings(self, base: LoopSettings, steps: _Steps) -> LoopSettings:
        if self.total_s is None:
            return base
        left = self.total_s - (self.clock() - self.started)
        if left <= 0 and self.exhausted_at is None:
            self.exhausted_at = steps.current
        share = max(left, 0.0) / steps.left
        if share >= base.max_time_s:
            return base
        return dataclasses.replace(
            base, max_time_s=share, min_time_s=min(base.min_time_s, share), cap_reason=STOP_BUDGET
        )

    def record(self) -> RunBudget | None:
        if self.total_s is None:
            return None
        return RunBudget(self.total_s, self.clock() - self.started, self.exhausted_at)


def pairs(config: RunConfig) -> bool:
    """Whether headline timings are measured in interleaved rounds of both pipelines."""
    return (
        config.paired
        and set(config.pipelines) == {UPSCALE, DIRECT}
        and config.compile == "none"  # compiled graphs are released between pipelines
        and "infer" in config.modes
    )


@dataclass
class _Deferred:
    """A measured pipeline whose headline loops wait for the other pipeline (paired mode)."""

    pipe: Pipeline
    x1: torch.Tensor
    host: torch.Tensor
    cold_ms: float | None
    warm_batch: int | None  # the batch size the peak-memory call already warmed


@dataclass
class _Context:
    """What every measurement of one run shares."""

    config: RunConfig
    device: torch.device
    steps: _Steps
    budget: _Budget
    limits: DeviceLimits | None = None
    defer: bool = False
    deferred: dict[str, _Deferred] = field(default_factory=dict)


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
    settings_in_force = apply_backend_settings(config)
    environment = fingerprint(device)
    steps = _Steps(config, device, progress)
    steps.monitor = ContentionMonitor(_gpu_process_probe(device))
    ctx = _Context(config, device, steps, _Budget(config.time_budget_s))
    notes: list[str] = []
    if "efficiency" in config.measurements:
        steps(f"device limits: {config.precision} matmul rate and copy bandwidth")
        timer, _ = timer_for(device)
        ctx.limits = measure_limits(
            device, config.precision, timer, config.limits_time_s, host_timer=cpu_timer
        )
    steps("one-time library initialisation (not counted in any pipeline's cold start)")
    pay_one_time_costs(device, config.modes)
    measured: dict[tuple[str, str], PipelineResult] = {}
    order = measure_order(config)
    paired: list[PairedRatio] = []
    ctx.defer = pairs(config)
    for backbone in config.backbones:
        for pipeline in [p for b, p in order if b == backbone]:
            try:
                measured[backbone, pipeline] = measure_pipeline(backbone, pipeline, ctx, images)
            finally:
                if config.compile != "none":
                    release_compiled(device)
        if ctx.defer:
            up, dn, ratios = paired_headline(
                backbone, measured[backbone, UPSCALE], measured[backbone, DIRECT], ctx, images
            )
            measured[backbone, UPSCALE], measured[backbone, DIRECT] = up, dn
            paired += ratios
            ctx.deferred.clear()  # both models can go
    results = [measured[b, p] for b in config.backbones for p in config.pipelines]
    if config.compile != "none":
        notes.append(COMPILE_EAGER_NOTE)
    contention = steps.monitor.finish()
    progress("done", steps.total, steps.total)
    notes += [note for r in results if (note := placement_note(r))]
    if device.type != "cuda" and "transfer" in config.measurements:
        notes.append(HOST_ONLY_NOTE)
    emulated = emulated_precision(config.precision, device)
    if emulated:
        notes.append(f"precision {config.precision} is EMULATED here ({emulated})")
    if ctx.budget.exhausted_at:
        notes.append(
            f"--time-budget {config.time_budget_s:g} s ran out at: {ctx.budget.exhausted_at}; "
            "later measurements took only their minimum samples"
        )
    if contention.busy:
        notes.append(contention.note)
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


def _gpu_process_probe(device: torch.device) -> Callable[[], int | None] | None:
    if device.type != "cuda":
        return None
    nvml = nvml_mod.load_nvml()
    if nvml is None:
        return None
    handle = nvml_mod.handle_for_uuid(nvml, str(torch.cuda.get_device_properties(device).uuid))
    return nvml_other_processes(nvml, handle, os.getpid()) if handle is not None else None


def measure_pipeline(
    backbone: str,
    pipeline_name: str,
    ctx: _Context,
    images: np.ndarray,
) -> PipelineResult:
    config, device, step = ctx.config, ctx.device, ctx.steps
    tag = f"{backbone}/{pipeline_name}"
    wanted = set(config.measurements)
    step(f"{tag}: building model")
    model = build_model(
        backbone, pipeline_name, num_classes=config.num_classes, pretrained=config.pretrained
    )
    pipe = Pipeline(pipeline_name, model, device, config.precision, config.channels_last)
    loop = loop_settings(config)
    timer, timer_name = timer_for(device)
    host = torch.from_numpy(images)
    if device.type == "cuda":
        host = host.pin_memory()

    def timed(fn: Callable[[], object], warm: bool = False, blocked: bool = False) -> TimingResult:
        """Time fn; `warm`: fn already ran at this size (no cold call, no warmup); `blocked`:
        a throughput-like figure (CUDA: blocks of calls per synchronisation)."""
        settings = ctx.budget.settings(loop, step)
        if warm:
            settings = dataclasses.replace(settings, warmup_iters=0)
        clock, name = (timer, timer_name)
        if blocked:
            clock, name = throughput_timer_for(device, fn)
        return time_loop(fn, settings, clock, name, cold=not warm)

    x1 = pipe.preprocess_batched(host[:1])
    eager = partial(_eager_forward, model, x1)  # counting needs the uncompiled model

    def counts() -> tuple[ParamCounts, int | None]:
        step(f"{tag}: parameter count and FLOPs (one forward)")
        if "flops" not in wanted:
            return count_parameters(model, eager), None
        flops: list[int] = []
        params = count_parameters(model, lambda: flops.append(count_flops(eager)))
        return params, flops[0]

    memory = MemoryResult(
        input_bytes_per_image=x1[0].numel() * x1.element_size(),
        weight_bytes=sum(t.numel() * t.element_size() for t in model.state_dict().values()),
        peak_batch_size=None,
        peak=None,
    )
    base: dict[str, Any] = {
        "backbone": backbone,
        "pipeline": pipeline_name,
        "input_size": pipe.input_size,
        "feature_map": list(model.feature_map),
        "transfer": _transfer_record(model),
    }

    compile_s = None
    if config.compile != "none":
        step(f"{tag}: torch.compile (mode {config.compile})")
        try:
            compile_s = _compile(pipe, config.compile, x1)
        except Exception as exc:  # a compiler failure: report it, keep the other pipeline
            message = (
                f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            )
            params, flops = counts()
            return PipelineResult(
                **base,
                params=params,
                flops_per_image=flops,
                preprocess=[],
                latency=None,
                throughput=[],
                end_to_end=[],
                memory=memory,
                error=message,
            )

    latency = None
    cold_ms = None
    if "infer" in config.modes and "latency" in wanted:
        # before anything else runs the model, so its cold start is the model's first call
        if ctx.defer:
            cold_ms = timer(partial(pipe.infer, x1))
        else:
            step(f"{tag}: latency, batch 1")
            latency = timed(partial(pipe.infer, x1))
    params, flops = counts()
    preprocess = (
        _preprocess(pipe, images, host, config, step, tag, timed)
        if "preprocess" in wanted and not ctx.defer
        else []
    )
    base |= {"params": params, "flops_per_image": flops, "preprocess": preprocess}

    throughput: list[BatchTiming] = []
    end_to_end: list[BatchTiming] = []
    monitor = None
    warm_batch: int | None = None
    if "infer" in config.modes:
        peak_bs = max(config.batch_sizes)
        shared = device.type == "cpu" and {"throughput", "end_to_end"} <= wanted
        for bs in config.batch_sizes:
            batch_u8 = host[:bs]
            xb = pipe.preprocess_batched(batch_u8)
            warm = False
            measure_memory = "memory" in wanted and bs == peak_bs
            memo = " and peak memory" if measure_memory else ""
            if ctx.defer:
                if measure_memory:
                    step(f"{tag}: peak memory, batch {bs}")
            elif shared:
                step(f"{tag}: throughput, end to end{memo}, batch {bs}")
            elif measure_memory and "throughput" not in wanted and "end_to_end" not in wanted:
                step(f"{tag}: peak memory, batch {bs}")
            if measure_memory:
                # the peak-memory call is also this batch size's warmup
                forward = partial(pipe.infer, xb)
                if config.compile != "none":
                    forward = partial(_eager_forward, model, xb, pipe)
                held = [*model.parameters(), *model.buffers(), xb]
                memory = dataclasses.replace(
                    memory, peak_batch_size=bs, peak=peak_memory(forward, device, held)
                )
                warm = config.compile == "none"
            if ctx.defer:
                warm_batch = bs if warm else warm_batch
                continue
            if shared:
                model_only, e2e = _shared_loop(
                    pipe, batch_u8, ctx.budget.settings(loop, step), warm
                )
                throughput.append(_batch_timing(bs, model_only))
                end_to_end.append(_batch_timing(bs, e2e))
                continue
            if "throughput" in wanted:
                step(f"{tag}: throughput, batch {bs}")
                timing = timed(partial(pipe.infer, xb), warm, blocked=True)
                throughput.append(_batch_timing(bs, timing))
                if bs == peak_bs:
                    # NVML is sampled in a pass of its own: its thread never shares the GIL
                    # with the launches of the timed loop
                    monitor = monitor_pass(
                        _gpu_monitor(device, True), partial(pipe.infer, xb), timing.stats.n, bs
                    )
                warm = True
            del xb
            if "end_to_end" in wanted:
                step(f"{tag}: end to end, batch {bs}")
                end_to_end.append(
                    _batch_timing(bs, timed(partial(pipe.end_to_end, batch_u8), warm, True))
                )

    if ctx.defer:
        ctx.deferred[pipeline_name] = _Deferred(pipe, x1, host, cold_ms, warm_batch)
    train = _train(pipe, config, step, tag, timed) if "train" in config.modes else []
    to_device = []
    if device.type == "cuda" and "transfer" in wanted:
        to_device = _to_device(pipe, host, config, step, tag, timed)
    efficiency = _efficiency(throughput, flops, preprocess, memory, ctx.limits)
    return PipelineResult(
        **base,
        latency=latency,
        throughput=throughput,
        end_to_end=end_to_end,
        memory=memory,
        compile_s=compile_s,
        train=train,
        to_device=to_device,
        gpu_monitor=monitor,
        efficiency=efficiency,
    )


def paired_headline(
    backbone: str,
    up: PipelineResult,
    dn: PipelineResult,
    ctx: _Context,
    images: np.ndarray,
) -> tuple[PipelineResult, PipelineResult, list[PairedRatio]]:
    """The headline timings (latency b1, preprocessing, throughput and end to end) of both
    pipelines, measured in interleaved ABBA rounds with both models resident."""
    config, device, step = ctx.config, ctx.device, ctx.steps
    wanted = set(config.measurements)
    a, b = ctx.deferred[UPSCALE], ctx.deferred[DIRECT]
    loop = loop_settings(config)
    timer, timer_name = timer_for(device)
    ratios: list[PairedRatio] = []
    out: dict[str, dict[str, Any]] = {UPSCALE: {}, DIRECT: {}}
    tag = f"{backbone}: both pipelines, interleaved"

    def run(
        key: str,
        fa: Callable[[], tuple[float, ...]],
        fb: Callable[[], tuple[float, ...]],
        warm: bool = False,
    ) -> PairedLoop:
        settings = ctx.budget.settings(loop, step)
        if warm:
            settings = dataclasses.replace(settings, warmup_iters=0)
        result = paired_loop(fa, fb, settings)
        ratios.append(
            PairedRatio.from_rounds(
                backbone, key, [r[-1] for r in result.ratios], result.stop_reason
            )
        )
        return result

    def timing(
        result: PairedLoop, side: int, part: int, name: str, cold: float | None, warmup: int
    ) -> TimingResult:
        samples = result.samples_a if side == 0 else result.samples_b
        return TimingResult(
            cold_start_ms=cold,
            warmup_iters=warmup,
            stats=Stats.from_samples([s[part] for s in samples], "ms"),
            timer=name,
            stop_reason=result.stop_reason,
            elapsed_s=result.elapsed_s,
        )

    def one(fn: Callable[[], object], clock: Timer = timer) -> Callable[[], tuple[float, ...]]:
        return lambda: (clock(fn),)

    if "latency" in wanted:
        step(f"{tag}: latency, batch 1")
        res = run(
            "latency_b1_median_ms",
            one(partial(a.pipe.infer, a.x1)),
            one(partial(b.pipe.infer, b.x1)),
        )
        out[UPSCALE]["latency"] = timing(res, 0, 0, timer_name, a.cold_ms, loop.warmup_iters)
        out[DIRECT]["latency"] = timing(res, 1, 0, timer_name, b.cold_ms, loop.warmup_iters)
    if "preprocess" in wanted:
        n = config.preprocess_images
        step(f"{tag}: preprocessing, per-image PIL path ({n} images)")
        res = run(
            "preprocess_per_image_pil_us",
            one(partial(a.pipe.preprocess_per_image, images[:n])),
            one(partial(b.pipe.preprocess_per_image, images[:n])),
        )
        pre = {
            side: [_preprocess_result(PER_IMAGE_PATH, n, timing(res, i, 0, timer_name, None, 0))]
            for i, side in enumerate((UPSCALE, DIRECT))
        }
        step(f"{tag}: preprocessing, batched tensor path ({n} images)")
        fa, fb = (
            partial(a.pipe.preprocess_batched, a.host[:n]),
            partial(b.pipe.preprocess_batched, b.host[:n]),
        )
        (ta, na), (tb, nb) = throughput_timer_for(device, fa), throughput_timer_for(device, fb)
        res = run("preprocess_batched_tensor_us", one(fa, ta), one(fb, tb))
        pre[UPSCALE].append(_preprocess_result(BATCHED_PATH, n, timing(res, 0, 0, na, None, 0)))
        pre[DIRECT].append(_preprocess_result(BATCHED_PATH, n, timing(res, 1, 0, nb, None, 0)))
        for side in (UPSCALE, DIRECT):
            out[side]["preprocess"] = pre[side]
    thr: dict[str, list[BatchTiming]] = {UPSCALE: [], DIRECT: []}
    e2e: dict[str, list[BatchTiming]] = {UPSCALE: [], DIRECT: []}
    shared = device.type == "cpu" and {"throughput", "end_to_end"} <= wanted
    for bs in config.batch_sizes:
        warm = a.warm_batch == bs and b.warm_batch == bs
        if shared:
            step(f"{tag}: throughput and end to end, batch {bs}")
            res = run(
                f"end_to_end_b{bs}_images_per_s",
                _split_call(a.pipe, a.host[:bs]),
                _split_call(b.pipe, b.host[:bs]),
                warm,
            )
            model_only = [r[0] for r in res.ratios]
            ratios.append(
                PairedRatio.from_rounds(
                    backbone, f"throughput_b{bs}_images_per_s", model_only, res.stop_reason
                )
            )
            warmup = 0 if warm else loop.warmup_iters
            for i, side in enumerate((UPSCALE, DIRECT)):
                thr[side].append(_batch_timing(bs, timing(res, i, 0, SHARED_TIMER, None, warmup)))
                e2e[side].append(_batch_timing(bs, timing(res, i, 1, SHARED_TIMER, None, warmup)))
            continue
        for kind, field_ in (("throughput", thr), ("end_to_end", e2e)):
            if kind not in wanted:
                continue
            step(f"{tag}: {kind.replace('_', ' ')}, batch {bs}")
            if kind == "throughput":
                xa, xb = (
                    a.pipe.preprocess_batched(a.host[:bs]),
                    b.pipe.preprocess_batched(b.host[:bs]),
                )
                fa, fb = partial(a.pipe.infer, xa), partial(b.pipe.infer, xb)
            else:
                fa, fb = (
                    partial(a.pipe.end_to_end, a.host[:bs]),
                    partial(b.pipe.end_to_end, b.host[:bs]),
                )
            (ta, na), (tb, nb) = throughput_timer_for(device, fa), throughput_timer_for(device, fb)
            res = run(f"{kind}_b{bs}_images_per_s", one(fa, ta), one(fb, tb), warm=True)
            field_[UPSCALE].append(_batch_timing(bs, timing(res, 0, 0, na, None, 0)))
            field_[DIRECT].append(_batch_timing(bs, timing(res, 1, 0, nb, None, 0)))
    results = []
    for side, result, d in ((UPSCALE, up, a), (DIRECT, dn, b)):
        monitor = result.gpu_monitor
        if device.type == "cuda" and thr[side]:
            peak = max(config.batch_sizes)
            x = d.pipe.preprocess_batched(d.host[:peak])
            best = next(t for t in thr[side] if t.batch_size == peak)
            monitor = monitor_pass(
                _gpu_monitor(device, True), partial(d.pipe.infer, x), best.timing.stats.n, peak
            )
        preprocess = out[side].get("preprocess", [])
        results.append(
            dataclasses.replace(
                result,
                latency=out[side].get("latency"),
                preprocess=preprocess,
                throughput=thr[side],
                end_to_end=e2e[side],
                gpu_monitor=monitor,
                efficiency=_efficiency(
                    thr[side], result.flops_per_image, preprocess, result.memory, ctx.limits
                ),
            )
        )
    return results[0], results[1], ratios


def _preprocess_result(path: str, n: int, t: TimingResult) -> PreprocessResult:
    return PreprocessResult(path, n, t.stats.scaled(1000.0 / n, "us/image"), t.stop_reason)


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
    pipe: Pipeline, batch_u8: torch.Tensor, settings: LoopSettings, warm: bool
) -> tuple[TimingResult, TimingResult]:
    """Model-only and end-to-end from the same calls (CPU): each call preprocesses the uint8
    batch, then runs the model, timing both parts; the stopping rule follows end to end."""
    model_only: list[float] = []
    split = _split_call(pipe, batch_u8)

    def one_call() -> float:
        model_ms, e2e_ms = split()
        model_only.append(model_ms)
        return e2e_ms

    cold = None if warm else one_call()
    warmup = 0 if warm else settings.warmup_iters
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
        )

    return result(model_only, None), result(e2e, cold)


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


def _transfer_record(model: Any) -> Transfer:
    t = model.transfer
    assert t is not None
    return Transfer(
        source=t.source, copied=list(t.copied), derived=dict(t.derived), fresh=list(t.fresh)
    )


def _eager_forward(
    model: torch.nn.Module, x: torch.Tensor, pipe: Pipeline | None = None
) -> torch.Tensor:
    """The uncompiled model (under the pipeline's autocast when given)."""
    with torch.inference_mode(), pipe.autocast() if pipe is not None else nullcontext():
        return model(x)


def _compile(pipe: Pipeline, mode: str, x1: torch.Tensor) -> float:
    """Compile, and time the first call (compilation happens there) on its own."""
    pipe.compile(mode)
    started = time.perf_counter()
    pipe.infer(x1)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize(pipe.device)
    return time.perf_counter() - started


def _preprocess(
    pipe: Pipeline,
    images: np.ndarray,
    host: torch.Tensor,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult],
) -> list[PreprocessResult]:
    n = config.preprocess_images
    step(f"{tag}: preprocessing, per-image PIL path ({n} images)")
    per_image = timed(partial(pipe.preprocess_per_image, images[:n]))
    step(f"{tag}: preprocessing, batched tensor path ({n} images)")
    batched = timed(partial(pipe.preprocess_batched, host[:n]), blocked=True)
    return [
        PreprocessResult(
            PER_IMAGE_PATH, n, per_image.stats.scaled(1000.0 / n, "us/image"), per_image.stop_reason
        ),
        PreprocessResult(
            BATCHED_PATH, n, batched.stats.scaled(1000.0 / n, "us/image"), batched.stop_reason
        ),
    ]


def _train(
    pipe: Pipeline,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult],
) -> list[TrainResult]:
    results = []
    pipe.model.train()
    optimizer = pipe.new_optimizer()
    try:
        for bs in config.batch_sizes:
            step(f"{tag}: train step, batch {bs}")
            x = pipe.example_input(bs, random=True)
            labels = torch.randint(0, config.num_classes, (bs,), device=pipe.device)
            one_step = partial(pipe.train_step, x, labels, optimizer)
            peak = None
            if "memory" in config.measurements:  # the measured step is also the warmup
                held = [*pipe.model.parameters(), *pipe.model.buffers(), x, labels]
                held += [t for st in optimizer.state.values() for t in st.values()]
                peak = peak_memory(one_step, pipe.device, [t for t in held if torch.is_tensor(t)])
            timing = timed(one_step, peak is not None, blocked=True)
            results.append(TrainResult(bs, bs / (timing.stats.median / 1000.0), timing, peak))
    finally:
        pipe.model.eval()
    return results


def _to_device(
    pipe: Pipeline,
    host: torch.Tensor,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult],
) -> list[TransferResult]:
    """Each way of getting this pipeline's input onto the GPU (pinned host memory)."""
    out = []
    cpu = torch.device("cpu")
    for bs in config.batch_sizes:
        step(f"{tag}: host-to-device transfer, batch {bs}")
        u8 = host[:bs]
        copy_u8 = timed(partial(u8.to, pipe.device, non_blocking=True))
        if pipe.input_size == u8.shape[-1]:
            out.append(
                TransferResult(
                    bs,
                    "copy_uint8_48",
                    u8.numel(),
                    u8.is_pinned(),
                    copy_u8.stats.median,
                    timed(partial(pipe.preprocess_batched, u8)).stats.median,
                )
            )
            continue
        # upscale on the host, then copy the float 224x224 batch
        f32 = pipe.preprocess_batched(u8, device=cpu).pin_memory()
        copy_f32 = timed(partial(f32.to, pipe.device, non_blocking=True))
        host_path = timed(partial(_host_upscale_then_copy, pipe, u8))
        out.append(
            TransferResult(
                bs,
                "host_upscale_then_copy_f32",
                f32.numel() * f32.element_size(),
                True,
                copy_f32.stats.median,
                host_path.stats.median,
            )
        )
        out.append(
            TransferResult(
                bs,
                "copy_uint8_then_device_upscale",
                u8.numel(),
                u8.is_pinned(),
                copy_u8.stats.median,
                timed(partial(pipe.preprocess_batched, u8)).stats.median,
            )
        )
    return out


def _host_upscale_then_copy(pipe: Pipeline, u8: torch.Tensor) -> torch.Tensor:
    f32 = pipe.preprocess_batched(u8, device=torch.device("cpu")).pin_memory()
    return f32.to(pipe.device, non_blocking=True)


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
    return Efficiency(
        batch_size=best.batch_size,
        achieved_flops_per_s=achieved,
        matmul_fraction=achieved / limits.matmul_flops_per_s,
        preprocess_bytes_per_s=rates,
        preprocess_copy_fraction=fractions,
    )


class _NoMonitor:
    result = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


MONITOR_PASS_MAX_CALLS = 50


def monitor_pass(
    monitor: Any, fn: Callable[[], object], calls: int, batch_size: int
) -> nvml_mod.MonitorResult | None:
    """Run `fn` `calls` times (at most MONITOR_PASS_MAX_CALLS) inside an NVML monitor, after the
    timed loop rather than during it; None where there is no monitor."""
    calls = max(1, min(calls, MONITOR_PASS_MAX_CALLS))
    with monitor as mon:
        for _ in range(calls):
            fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    if mon is None or mon.result is None:
        return None
    return dataclasses.replace(mon.result, images=calls * batch_size)


def _gpu_monitor(device: torch.device, wanted: bool) -> Any:
    """An NVML monitor for this CUDA device, or a no-op where NVML or CUDA is absent."""
    if not wanted or device.type != "cuda":
        return _NoMonitor()
    nvml = nvml_mod.load_nvml()
    if nvml is None:
        return _NoMonitor()
    handle = nvml_mod.handle_for_uuid(nvml, str(torch.cuda.get_device_properties(device).uuid))
    return nvml_mod.GpuMonitor(nvml, handle) if handle is not None else _NoMonitor()


def _batch_timing(batch_size: int, timing: TimingResult) -> BatchTiming:
    return BatchTiming(
        batch_size=batch_size,
        images_per_s=batch_size / (timing.stats.median / 1000.0),
        timing=timing,
    )

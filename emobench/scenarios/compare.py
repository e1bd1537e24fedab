"""Compose models, pipelines and measurements into a Report."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emobench.config import RunConfig, Variant, is_plugin
from emobench.data import images as data_mod
from emobench.device import (
    apply_backend_settings,
    check_device_options,
    emulated_precision,
    resolve_device,
    tf32_note,
)
from emobench.errors import MeasurementError, ModelError, UsageError
from emobench.measure import nvml as nvml_mod
from emobench.measure.contention import ContentionMonitor
from emobench.measure.env import fingerprint
from emobench.measure.flops import ParamCounts, count_flops, count_parameters
from emobench.measure.limits import measure_limits
from emobench.measure.memory import peak_memory
from emobench.measure.search import is_oom
from emobench.measure.timing import (
    LoopSettings,
    Timer,
    TimingResult,
    Watchdog,
    cpu_timer,
    sized_block_timer,
    time_loop,
    timer_for,
)
from emobench.models import EmotionNet, build_model, check_backbone
from emobench.names import ORT_RUNTIME, TORCH_RUNTIME
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
from emobench.results.measurements import Contention, FreshStart, PeakMemory
from emobench.results.metrics import DIRECT, UPSCALE
from emobench.results.progress import ProgressFn
from emobench.runtimes.torch import Pipeline
from emobench.scenarios import cold_start
from emobench.scenarios.context import Deferred, RunContext
from emobench.scenarios.paired import paired_headline
from emobench.scenarios.parts import SHARED_TIMER as SHARED_TIMER  # re-exported: tests use it
from emobench.scenarios.parts import (
    _batch_timing,
    _efficiency,
    _gpu_process_probe,
    _shared_loop,
    ceiling_plan_for,
)
from emobench.scenarios.parts import _gpu_monitor as _gpu_monitor  # re-exported: tests use it
from emobench.scenarios.parts import _NoMonitor as _NoMonitor  # re-exported: tests use it
from emobench.scenarios.parts import monitor_pass as monitor_pass  # re-exported: tests use it
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
    FRESH_START,
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
    "with --compile, parameter use, FLOPs and inference peak memory are measured on the eager "
    "model (torch's dispatch-mode trackers do not see inside compiled graphs); the train "
    "step's live-tensor peak is absent (only the allocator's figures), timings are compiled"
)


FRESH_RUNTIME = (
    "fresh process: the exported file's session created and its first batch-1 inference run in "
    "a new interpreter that imports the runtime only (no torch)"
)
FRESH_TIMEOUT_S = 120.0
RUNTIME_COUNTS_NOTE = (
    "runtime variants: parameters, FLOPs and weight bytes are the torch model's the file was "
    "exported from; the file's own size is the deployment's file size"
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
    if ORT_RUNTIME in config.runtimes:
        from emobench.runtimes.onnx import check_available

        check_available(device)
        if config.quantize and device.type == "cuda":
            raise UsageError(
                f"--quantize {config.quantize} measures ONNX Runtime's CPU int8 kernels: on "
                "the CUDA execution provider a QDQ file runs dequantize + fp32 kernels, not "
                "int8 ones; use --device cpu for the int8 file"
            )
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
    steps: list[Steps] = []
    try:
        with device_scope(device):
            return _run(config, device, images, progress, kind, started, steps)
    except Exception as exc:
        if not is_oom(exc):
            raise
        where = steps[0].current if steps else "the run"
        raise MeasurementError(out_of_memory_message(exc, where, config, device)) from None


def out_of_memory_message(
    exc: BaseException, where: str, config: RunConfig, device: torch.device
) -> str:
    """One line for a run that ran out of memory: the step it stopped in, the batch size where
    the model call knows it, the allocator's first sentence, and the command that finds the
    largest batch that fits."""
    batch = getattr(exc, "batch_size", None)
    at = f" at batch {batch}" if batch is not None else ""
    text = str(exc).strip().splitlines()
    first = ". ".join(text[0].split(". ")[:2])[:160] if text else type(exc).__name__
    mode = "infer" if config.mode == "infer" else "train"
    backbone = next(
        (b for b in config.backbones if where.startswith((f"{b}/", f"{b}:"))), config.backbones[0]
    )
    gpu = "GPU " if device.type == "cuda" else ""
    return (
        f"out of {gpu}memory{at} during '{where}' ({first}); use a smaller --batch-size: "
        f"`emobench maxbatch --backbone {backbone} --device {device} --mode {mode}` finds the "
        "largest batch that fits"
    )


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
    announced: list[Steps] | None = None,
) -> Report:
    """Take the plan's steps, then assemble the report (`announced` receives the step counter,
    so a failure can say which step it stopped in)."""
    settings_in_force = apply_backend_settings(config)
    environment = fingerprint(device)
    plan = step_plan(config, device)
    steps = Steps(plan, progress)
    if announced is not None:
        announced.append(steps)
    steps.monitor = ContentionMonitor(_gpu_process_probe(device))
    ctx = RunContext(config, device, plan, steps, Budget(config.time_budget_s))
    if Step(LIMITS) in plan.run:
        steps(f"device limits: {config.precision} compute ceiling and copy bandwidth")
        timer, _ = timer_for(device)
        ceiling = ceiling_plan_for(
            build_model, config.backbones, config.pipelines, config.num_classes,
            max(config.batch_sizes), config.channels_last,
        )  # fmt: skip
        ctx.limits = measure_limits(
            device, config.precision, timer, config.limits_time_s, host_timer=cpu_timer,
            plan=ceiling,
        )  # fmt: skip
    steps("one-time library initialisation (not counted in any pipeline's cold start)")
    pay_one_time_costs(device, config.modes)
    order = measure_order(config)
    ctx.settings_in_force = settings_in_force
    if any(v.runtime != TORCH_RUNTIME for v in config.variants):
        ctx.export_dir = Path(tempfile.mkdtemp(prefix="emobench-export-"))
    try:
        results, paired = _measure_all(ctx, order, images)
    finally:
        if ctx.export_dir is not None:
            shutil.rmtree(ctx.export_dir, ignore_errors=True)
    contention = steps.monitor.finish()
    progress("done", steps.total, steps.total)
    emulated = emulated_precision(config.precision, device)
    notes = _notes(ctx, results, contention, emulated)
    tf32 = tf32_note(settings_in_force, config.precision, device)
    if tf32:
        notes.insert(0, tf32)
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
            "variants": [v.label for v in config.variants],
            "variant_order": {
                b: [v.label for v in variant_order(config.variants, i)]
                for i, b in enumerate(config.backbones)
            },
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
    """Every backbone, and for each every runtime variant (see config.Variant), each measured
    as a torch-only run measures it; torch's threads set to a --threads sweep's count for its
    variants and put back afterwards. A backbone's variants run one after the other (so
    runtimes are compared minutes, not a whole run, apart), in an order that alternates: within
    each thread count the runtimes run forwards for one backbone or count and backwards for the
    next (variant_order), so no runtime always runs first. Results are returned variant by
    variant, backbones in the config's order."""
    variants = ctx.config.variants
    results: dict[str, list[PipelineResult]] = {v.label: [] for v in variants}
    paired: dict[str, list[PairedRatio]] = {v.label: [] for v in variants}
    threads_before = torch.get_num_threads()
    try:
        for i, backbone in enumerate(ctx.config.backbones):
            for variant in variant_order(variants, i):
                ctx.variant = variant
                torch.set_num_threads(variant.threads or threads_before)
                mine = [(b, p) for b, p in order if b == backbone]
                got, ratios = _measure_variant(ctx, mine, images)
                results[variant.label] += got
                paired[variant.label] += [
                    dataclasses.replace(r, variant=variant.label) for r in ratios
                ]
    finally:
        torch.set_num_threads(threads_before)
        ctx.variant = Variant()
    flat = [r for v in variants for r in results[v.label]]
    return flat, [r for v in variants for r in paired[v.label]]


def variant_order(variants: tuple[Variant, ...], backbone_index: int) -> list[Variant]:
    """The order a backbone's variants run in: thread counts as given; within each, the
    runtimes forwards or backwards, alternating with the backbone and the count."""
    counts = list(dict.fromkeys(v.threads for v in variants))
    out: list[Variant] = []
    for j, threads in enumerate(counts):
        group = [v for v in variants if v.threads == threads]
        out += group if (backbone_index + j) % 2 == 0 else group[::-1]
    return out


def _measure_variant(
    ctx: RunContext, order: list[tuple[str, str]], images: np.ndarray
) -> tuple[list[PipelineResult], list[PairedRatio]]:
    """Every backbone x pipeline in `order`, in the config's order; paired, each backbone's
    headline loops run once both its pipelines are set up. A runtime other than torch exports
    both pipelines of a backbone first: a pipeline whose export fails is that pipeline's error,
    and the other is then measured on its own (not paired)."""
    config = ctx.config
    measured: dict[tuple[str, str], PipelineResult] = {}
    paired: list[PairedRatio] = []
    for backbone in dict.fromkeys(b for b, _ in order):
        pipelines = [p for b, p in order if b == backbone]
        benches: dict[str, tuple[_Bench, str | None]] = {}
        if ctx.variant.runtime != TORCH_RUNTIME:
            benches = {p: _deployed(backbone, p, ctx, images) for p in pipelines}
        failed = [p for p in pipelines if p in benches and benches[p][1] is not None]
        solo = ctx if not (failed and ctx.defer) else _unpaired(ctx, len(pipelines) - len(failed))
        for pipeline in pipelines:
            bench, error = benches.get(pipeline, (None, None))
            if bench is not None and error is not None:
                measured[backbone, pipeline] = _export_failed(bench, error)
                continue
            if bench is not None:
                bench = dataclasses.replace(bench, ctx=solo)
            try:
                measured[backbone, pipeline] = measure_pipeline(
                    backbone, pipeline, solo, images, bench
                )
            finally:
                if config.compile != "none":
                    release_compiled(ctx.device)
        if solo.defer:
            up, dn, ratios = paired_headline(
                backbone, measured[backbone, UPSCALE], measured[backbone, DIRECT], ctx, images
            )
            measured[backbone, UPSCALE], measured[backbone, DIRECT] = up, dn
            paired += ratios
            ctx.deferred.clear()  # both models can go
    backbones = list(dict.fromkeys(b for b, _ in order))
    return [measured[b, p] for b in backbones for p in config.pipelines], paired


def _unpaired(ctx: RunContext, survivors: int) -> RunContext:
    """The run's context for a backbone whose pipelines cannot be paired (one failed to
    export): the survivors measured on their own, the progress total adjusted to their steps."""
    config = dataclasses.replace(ctx.config, paired=False)
    plan = step_plan(config, ctx.device)
    ctx.steps.total += survivors * (len(plan.pipeline) - len(ctx.plan.pipeline)) - len(
        ctx.plan.paired
    )
    return dataclasses.replace(ctx, plan=plan)


def _notes(
    ctx: RunContext, results: list[PipelineResult], contention: Contention, emulated: str | None
) -> list[str]:
    """The report's notes, in the order they are shown."""
    config = ctx.config
    notes = [COMPILE_EAGER_NOTE] if config.compile != "none" else []
    if any(v.runtime != TORCH_RUNTIME for v in config.variants):
        notes.append(RUNTIME_COUNTS_NOTE)
    if config.quantize and config.data is None:
        notes.append(
            f"--quantize {config.quantize}: calibrated on synthetic images, not representative "
            "of real faces: its speed and size hold, its accuracy says nothing (use --data, "
            "and `emobench export` for accuracy)"
        )
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
    backbone: str
    pipeline: str
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
        a throughput-like figure (blocks of calls per sample, sized by timing.sized_block_timer,
        whose calls are the warmup: no cold call, no further warmup). None when the run's
        watchdog cut a call before the first sample (the report's notes say why)."""
        settings = self.ctx.budget.settings(self.loop, self.ctx.steps)
        if warm or blocked:
            settings = dataclasses.replace(settings, warmup_iters=0)

        def measure(watchdog: Watchdog) -> TimingResult:
            if not blocked:
                return time_loop(
                    fn, settings, self.timer, self.timer_name, cold=not warm, watchdog=watchdog
                )
            block = sized_block_timer(self.ctx.device, fn, watchdog, warm)
            return time_loop(
                fn,
                settings,
                block.timer,
                block.name,
                cold=False,
                watchdog=watchdog,
                calls_per_sample=block.calls,
            )

        return self.ctx.watched(measure)


@dataclass
class _Inference:
    """What one pipeline's per-batch inference steps measured."""

    memory: MemoryResult
    throughput: list[BatchTiming] = field(default_factory=list)
    end_to_end: list[BatchTiming] = field(default_factory=list)
    monitor: nvml_mod.MonitorResult | None = None
    warm_batch: int | None = None  # the batch size the peak-memory call already warmed


def measure_pipeline(
    backbone: str,
    pipeline_name: str,
    ctx: RunContext,
    images: np.ndarray,
    bench: _Bench | None = None,
) -> PipelineResult:
    """One backbone x pipeline, in the steps the plan lists for a pipeline (paired: the
    headline loops are left to paired_headline, with both pipelines resident). `bench`: the
    pipeline already built (and exported, for a runtime other than torch)."""
    if bench is None:
        bench = _setup(backbone, pipeline_name, ctx, images)
    memory = _sizes(bench)
    base = _identity(bench, backbone, pipeline_name)
    compiled: dict[str, float] = {}
    if Step(COMPILE) in ctx.plan.pipeline:
        compiled, error = _compile_step(bench)
        if error is not None:
            return _compile_failed(bench, base, memory, error)
    latency, cold_ms, cold_note = _latency(bench)
    params, flops = _counts(bench)
    preprocess = _preprocessing(bench, images)
    inference = _inference(bench, memory)  # its inputs are gone before the train peak
    if ctx.defer:
        ctx.deferred[pipeline_name] = Deferred(
            bench.pipe, bench.x1, bench.host, cold_ms, inference.warm_batch
        )
    train, to_device = _train_and_transfer(bench)
    efficiency = _efficiency(inference.throughput, flops, preprocess, inference.memory, ctx.limits)
    return PipelineResult(
        **base,
        deployment=getattr(bench.pipe, "deployment", None),
        params=params,
        flops_per_image=flops,
        preprocess=preprocess,
        latency=latency,
        throughput=inference.throughput,
        end_to_end=inference.end_to_end,
        memory=inference.memory,
        compile_s=compiled.get("1"),
        train=train,
        to_device=to_device,
        gpu_monitor=inference.monitor,
        efficiency=efficiency,
        compile_s_per_batch=compiled,
        cold_start_note=cold_note,
    )


def _setup(backbone: str, pipeline_name: str, ctx: RunContext, images: np.ndarray) -> _Bench:
    """Build the model and its pipeline; the inputs on the host (pinned on CUDA)."""
    config, device = ctx.config, ctx.device
    tag = f"{backbone}/{pipeline_name}"
    tag += ctx.suffix
    ctx.steps(f"{tag}: building model")
    # the same weights in every variant (a runtime's file is exported once, its parity checked
    # against each variant's model) and in every run with the same --seed
    torch.manual_seed(config.seed)
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
    return _Bench(ctx, tag, model, pipe, backbone, pipeline_name, host, x1, loop, timer, timer_name)


def _deployed(
    backbone: str, pipeline: str, ctx: RunContext, images: np.ndarray
) -> tuple[_Bench, str | None]:
    """Build the pipeline and make it the variant's runtime: export (reusing this run's fp32
    file), int8 quantization on request, the parity check, and the file opened in a fresh
    process. The bench that measures it, and the export's error line when it failed."""
    from emobench.runtimes.onnx import CALIBRATION_IMAGES, PARITY_BATCH, ExportError, OrtSettings
    from emobench.runtimes.onnx import deploy as deploy_onnx

    bench = _setup(backbone, pipeline, ctx, images)
    variant, config = ctx.variant, ctx.config
    what = "export to ONNX and parity check" + (
        f", {variant.quantize} quantization" if variant.quantize else ""
    )
    ctx.steps(f"{bench.tag}: {what}")
    settings = OrtSettings(
        intra_op_threads=variant.threads or torch.get_num_threads(),
        device=str(ctx.device),
        use_tf32=config.tf32 if ctx.device.type == "cuda" else None,
    )
    probe = bench.pipe.preprocess_batched(bench.host[:PARITY_BATCH])
    calibration = None
    if variant.quantize:
        calibration = bench.pipe.preprocess_batched(bench.host[:CALIBRATION_IMAGES])
    assert ctx.export_dir is not None
    try:
        pipe = deploy_onnx(
            bench.pipe,
            ctx.export_dir,
            settings,
            probe,
            variant.quantize,
            calibration,
            calibration_source=f"--data {Path(config.data).name}" if config.data else "synthetic",
            representative=config.data is not None,
            exported=ctx.exported,
        )
    except ExportError as exc:
        return bench, f"{ORT_RUNTIME}: {exc}"
    finally:
        del probe, calibration
    if Step(FRESH_START) in ctx.plan.runtime:
        ctx.steps(f"{bench.tag}: fresh process: open the file, first inference at batch 1")
        fresh, note = _fresh_start(ctx, pipe.path, settings, pipe.input_size)
        assert pipe.deployment is not None
        pipe.deployment = dataclasses.replace(pipe.deployment, fresh=fresh, fresh_note=note)
    return dataclasses.replace(bench, pipe=pipe, x1=pipe.preprocess_batched(bench.host[:1])), None


def _fresh_start(
    ctx: RunContext, path: Path | None, settings: Any, input_size: int
) -> tuple[FreshStart | None, str | None]:
    """The file's session creation and first inference in a fresh process, and its peak RSS
    (runtimes.ort_child); or why they are absent."""
    from emobench.runtimes.ort_child import ENTRY

    timeout = FRESH_TIMEOUT_S
    bound = ctx.budget.watchdog(ctx.steps).limit_s
    if bound is not None:
        timeout = min(timeout, bound)
    argument = json.dumps(settings.as_child() | {"path": str(path), "input_size": input_size})
    res = fresh_start_launch(ENTRY, argument, timeout)
    data = res.last_json()
    if res.timed_out:
        return None, f"not measured: the fresh process took over {timeout:.3g} s"
    if res.returncode != 0 or not isinstance(data, dict):
        return None, f"not measured: the fresh process failed ({res.last_error_line()[:200]})"
    providers = data.get("providers") or []
    if ctx.device.type == "cuda" and (not providers or providers[0] != "CUDAExecutionProvider"):
        return None, f"not measured: the fresh process ran on {providers}, not the GPU"
    if data.get("torch_imported"):
        return None, "not measured: the fresh process imported torch (not a deployment's start)"
    try:
        fresh = FreshStart(
            session_create_ms=float(data["session_create_ms"]),
            first_infer_ms=float(data["first_infer_ms"]),
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            base_rss_bytes=int(data["base_rss_bytes"]),
        )
    except (KeyError, TypeError, ValueError):
        return None, "not measured: the fresh process's answer was not understood"
    return fresh, FRESH_RUNTIME


def fresh_start_launch(entry: str, argument: str, timeout_s: float) -> Any:
    """The fresh process that opens an exported file (a seam: tests replace it)."""
    from emobench.launchers.child import run_child

    return run_child(entry, argument, timeout_s)


def _export_failed(bench: _Bench, error: str) -> PipelineResult:
    """The result of a pipeline whose export (or parity check) failed: its sizes, parameter
    counts and the error, no timings; the progress total loses the steps it will not take."""
    ctx = bench.ctx
    skipped = len(ctx.plan.pipeline) - 1 + (Step(FRESH_START) in ctx.plan.runtime)
    ctx.steps.total -= skipped
    model = bench.model
    return PipelineResult(
        **_identity(bench, bench.backbone, bench.pipeline),
        params=count_parameters(model, partial(_eager_forward, model, bench.x1)),
        flops_per_image=None,
        latency=None,
        throughput=[],
        end_to_end=[],
        preprocess=[],
        memory=_sizes(bench),
        error=error,
    )


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
    variant = bench.ctx.variant
    return {
        "backbone": backbone,
        "pipeline": pipeline_name,
        "input_size": bench.pipe.input_size,
        "feature_map": list(bench.model.feature_map),
        "transfer": _transfer_record(bench.model),
        "runtime": variant.runtime,
        "quantize": variant.quantize,
        "threads": variant.threads,
    }


def _compile_step(bench: _Bench) -> tuple[dict[str, float], str | None]:
    """torch.compile, static shapes: the first call at batch 1 and at every --batch-size, each
    compiling its own graph, timed apart before anything else is timed (keyed by batch size);
    or why the compiler failed. Running out of memory is no compiler failure: it ends the run
    (see run_benchmark)."""
    mode, config = bench.config.compile, bench.config
    bench.ctx.steps(f"{bench.tag}: torch.compile (mode {mode})")
    sizes = sorted({1, *config.batch_sizes})
    try:
        bench.pipe.compile(mode, shapes=len(sizes))
        seconds = {}
        for bs in sizes:
            x = bench.x1 if bs == 1 else bench.pipe.preprocess_batched(bench.host[:bs])
            seconds[str(bs)] = _compile(bench.pipe, x)
            del x
        return seconds, None
    except Exception as exc:  # a compiler failure: report it, keep the other pipeline
        if is_oom(exc):
            raise
        cause: BaseException = exc
        if isinstance(exc, ModelError) and exc.__cause__ is not None:
            cause = exc.__cause__  # the compiler's own error, raised in the first call
        lines = str(cause).splitlines() or [""]
        return {}, f"torch.compile failed: {type(cause).__name__}: {lines[0][:300]}"


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


def _latency(bench: _Bench) -> tuple[TimingResult | None, float | None, str | None]:
    """Batch-1 latency, or (paired) only its first call, the loop waiting for the other
    pipeline: (latency, cold start in ms, how the cold start was taken or why it is absent).

    The first in-process call is made either way (it is the loop's cold call, or paired the
    call that warms the model); its time is the cold start on the CPU. On CUDA the cold start
    comes from a fresh process instead (scenarios.cold_start), under --compile from nowhere."""
    # before anything else runs the model, so its first call is the model's first call
    plan = bench.ctx.plan
    if Step(LATENCY) in plan.paired:
        first = partial(bench.pipe.infer, bench.x1)
        what = f"{bench.tag}: cold start, batch 1"
        ms = bench.ctx.watched(lambda watchdog: watchdog.call(bench.timer, first), what)
        cold_ms, note = _cold_start(bench, ms)
        return None, cold_ms, note
    if Step(LATENCY) in plan.pipeline:
        bench.ctx.steps(f"{bench.tag}: latency, batch 1")
        latency = bench.timed(partial(bench.pipe.infer, bench.x1))
        cold_ms, note = _cold_start(bench, latency.cold_start_ms if latency else None)
        if latency is not None:
            latency = dataclasses.replace(latency, cold_start_ms=cold_ms)
        return latency, cold_ms, note
    return None, None, None


def _cold_start(bench: _Bench, in_process_ms: float | None) -> tuple[float | None, str]:
    """The cold start the report gives, and how it was taken (see scenarios.cold_start)."""
    ctx = bench.ctx
    if bench.config.compile != "none":
        return None, cold_start.COMPILED
    deployment = getattr(bench.pipe, "deployment", None)
    if deployment is not None:  # a runtime other than torch: its fresh process's start
        if deployment.fresh is None:
            return None, deployment.fresh_note
        return deployment.fresh.cold_start_ms, FRESH_RUNTIME
    if ctx.device.type != "cuda":
        if in_process_ms is None:
            return None, "not measured: the watchdog cut the first call (see the notes)"
        return in_process_ms, cold_start.IN_PROCESS
    timeout = cold_start.COLD_START_TIMEOUT_S
    bound = ctx.budget.watchdog(ctx.steps).limit_s
    if bound is not None:
        timeout = min(timeout, bound)
    return cold_start.cold_start_in_child(
        bench.config,
        bench.backbone,
        bench.pipeline,
        str(ctx.device),
        timeout,
        launch=cold_start_launch,
    )


def cold_start_launch(entry: str, argument: str, timeout_s: float) -> Any:
    """The fresh process that times a CUDA cold start (a seam: tests replace it)."""
    from emobench.launchers.child import run_child

    return run_child(entry, argument, timeout_s)


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
    xb = pipe.preprocess_batched(batch_u8)
    warm = False
    measure_memory = bs == plan.memory_batch
    memo = " and peak memory" if measure_memory else ""
    if Step(MEMORY, bs) in plan.pipeline:
        step(f"{tag}: peak memory, batch {bs}")
    elif Step(SHARED, bs) in plan.pipeline:
        step(f"{tag}: throughput, end to end{memo}, batch {bs}")
    if measure_memory:
        # the peak-memory calls (one untimed, one measured) are also this batch size's warmup
        out.memory = _peak_memory(bench, xb, bs, out.memory)
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
                out.monitor = _monitor(bench, partial(pipe.infer, xb), bs)
            warm = True
    del xb  # not resident in the end-to-end loop, nor in the train steps after it
    if Step(END_TO_END, bs) in plan.pipeline:
        step(f"{tag}: end to end, batch {bs}")
        timing = bench.timed(partial(pipe.end_to_end, batch_u8), warm, True)
        if timing is not None:
            out.end_to_end.append(_batch_timing(bs, timing))


def _monitor(bench: _Bench, fn: Callable[[], object], bs: int) -> nvml_mod.MonitorResult | None:
    """The NVML pass after a throughput loop (at least 2 s of back-to-back calls, or this
    step's share of --time-budget when that is less), its calls watched like the loop's."""
    return bench.ctx.energy_pass(fn, bs)


def _peak_memory(bench: _Bench, xb: torch.Tensor, bs: int, memory: MemoryResult) -> MemoryResult:
    """Inference peak memory of one call at batch size `bs` (the eager model under --compile).
    CUDA: after one untimed call at that size (cuDNN autotuning under --cudnn-benchmark and the
    allocator's first segments land there, not in the peak). CPU: the first call's, as the
    RSS high-water mark always was: a warm call would cost one more forward at the largest
    batch (about half of --quick's whole budget for vgg16 on a 2-core CPU)."""
    forward = partial(bench.pipe.infer, xb)
    if bench.config.compile != "none":
        forward = partial(_eager_forward, bench.model, xb, bench.pipe)
    held = [*bench.model.parameters(), *bench.model.buffers(), xb]
    device = bench.ctx.device
    warm = 1 if device.type == "cuda" else 0
    peak = bench.ctx.watched(
        lambda watchdog: peak_memory(partial(watchdog.call, forward), device, held, warm)
    )
    if peak is None:  # the call was cut: no peak (the notes say why)
        return memory
    if bench.ctx.variant.runtime != TORCH_RUNTIME:
        peak = runtime_peak(peak)
    return dataclasses.replace(memory, peak_batch_size=bs, peak=peak)


def runtime_peak(peak: PeakMemory) -> PeakMemory:
    """A peak measured around a runtime other than torch: torch's trackers see only the output
    tensor, and its CUDA allocator none of the runtime's own memory: those figures are absent.
    The process's RSS growth (CPU) and NVML's device memory (CUDA) see the runtime's."""
    return dataclasses.replace(
        peak,
        method=f"{peak.method} (runtime: RSS or NVML only)",
        tensor_peak_bytes=None,
        cuda_peak_allocated_bytes=None,
        cuda_peak_reserved_bytes=None,
        cuda_allocated_before_bytes=None,
        cuda_own_resident_bytes=None,
    )


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

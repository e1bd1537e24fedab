"""Find the largest batch each pipeline fits: a probed search on CUDA, a memory fit on CPU; on
both the winning batch is confirmed by a real run in a fresh process (launchers.child)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from emobench.config import check_runtime_names
from emobench.device import device_scope, resolve_device
from emobench.errors import ModelError, UsageError
from emobench.launchers.child import run_child
from emobench.measure import search as mb
from emobench.measure.env import fingerprint
from emobench.measure.memory import process_peak_rss
from emobench.models import EmotionNet, build_model, check_backbone, get_backbone, input_size
from emobench.names import MODES, ORT_RUNTIME, TORCH_RUNTIME
from emobench.results import MaxBatchResult, Report
from emobench.results.progress import ProgressFn
from emobench.runtimes.torch import Pipeline

DEFAULT_MAX_BATCH = 65536
DEFAULT_MARGIN = 0.05
CPU_FIT_BATCHES = (2, 4, 8, 16)  # always measured; larger ones while they stay cheap
CPU_FIT_STEP_S = 1.0  # stop growing the fit batch once a step takes this long
CPU_FIT_MEMORY_SHARE = 0.25  # or once it grows memory by this share of the budget
CPU_CONFIRM_ATTEMPTS = 3
CPU_BUDGET_SHRINK = 0.95  # after a failed confirmation, aim this far under the budget
CPU_REFINE_HEADROOM = 0.08  # step up once more when a confirmed run left this much unused
CPU_AIM = 0.94  # aim the first confirmation this far under the budget: a retry costs a full step
CHILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class MaxBatchConfig:
    backbone: str = "vgg16"
    pipelines: tuple[str, ...] = ("upscale224", "direct48")
    mode: str = "infer"
    device: str = "auto"
    budget: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    margin: float = DEFAULT_MARGIN
    num_classes: int = 7
    runtimes: tuple[str, ...] = (TORCH_RUNTIME,)  # searched one after the other, one report

    @property
    def runtime(self) -> str:
        """The runtime being searched (the first one; run_maxbatch gives each its turn)."""
        return self.runtimes[0]

    def validate(self) -> MaxBatchConfig:
        check_runtime_names(self.runtimes, self.mode)
        check_backbone(self.backbone, self.pipelines, self.num_classes)
        for p in self.pipelines:
            input_size(p)
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}; choose infer or train")
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be >= 1, got {self.max_batch}")
        mb.apply_margin(1, self.margin)
        return self


def make_step(model: EmotionNet, mode: str, device: torch.device) -> Callable[[int], None]:
    """One probe's work at batch n: a forward (infer) or one SGD-with-momentum step (train).

    The optimizer's momentum buffers exist before the step (Pipeline.new_optimizer), so a single
    step already holds what every later step of a training run holds.
    """
    pipe = Pipeline(model.pipeline, model, device)
    if mode == "infer":

        def infer(n: int) -> None:
            pipe.infer(pipe.example_input(n))

        return infer

    model.train()

    def train(n: int) -> None:
        optimizer = pipe.new_optimizer()
        try:
            labels = torch.zeros(n, dtype=torch.long, device=device)
            pipe.train_step(pipe.example_input(n, random=True), labels, optimizer)
        finally:
            # an OOM in backward or step() skips train_step's zero_grad: without this the next
            # probe would start with this one's gradients still allocated
            optimizer.zero_grad(set_to_none=True)
            optimizer.state.clear()

    return train


def cuda_hooks(device: torch.device, model: torch.nn.Module | None = None) -> mb.MemoryHooks:
    def reset() -> None:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def release() -> None:
        import gc

        if model is not None:
            model.zero_grad(set_to_none=True)  # whatever a failed step left behind
        gc.collect()
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()

    def allocation_failures() -> int:
        """Out-of-memory errors the allocator raised and cudaMalloc calls it had to retry."""
        stats = torch.cuda.memory_stats(device)
        return int(stats.get("num_ooms", 0)) + int(stats.get("num_alloc_retries", 0))

    return mb.MemoryHooks(
        reset,
        lambda: int(torch.cuda.max_memory_allocated(device)),
        release,
        lambda: int(torch.cuda.max_memory_reserved(device)),
        sync=lambda: torch.cuda.synchronize(device),
        allocation_failures=allocation_failures,
    )


def non_allocator_bytes(device: torch.device) -> int:
    """Device memory in use outside torch's caching allocator: the CUDA context, cuBLAS/cuDNN
    handles and workspaces, other processes. set_per_process_memory_fraction cannot cap it."""
    free, total = torch.cuda.mem_get_info(device)
    return max(0, int(total - free) - int(torch.cuda.memory_reserved(device)))


def allocator_fraction(budget: int, outside: int, total: int) -> float:
    """The allocator's share of the card so that allocator + everything outside it <= budget."""
    return allocator_cap(budget, outside, total) / total


def allocator_cap(budget: int, outside: int, total: int) -> int:
    """The allocator's bytes so that allocator + everything outside it <= budget."""
    if budget <= outside:
        raise UsageError(
            f"--budget {budget / 2**30:.2f} GiB is not more than the "
            f"{outside / 2**30:.2f} GiB already used outside torch's allocator on this GPU "
            "(CUDA context, library handles, other processes)"
        )
    return min(total, budget - outside)


def device_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(psutil.virtual_memory().available)


def resolve_budget(config: MaxBatchConfig, device: torch.device) -> int:
    total = device_memory_bytes(device)
    what = "the GPU's memory" if device.type == "cuda" else "the available RAM"
    if config.budget is None:
        return total if device.type == "cuda" else total // 2
    return mb.parse_budget(config.budget, total, what)


def check_ort_maxbatch(device: torch.device) -> None:
    """--runtime onnxruntime: the CPU only (a UsageError before anything is exported)."""
    if device.type == "cuda":
        raise UsageError(
            f"maxbatch --runtime {ORT_RUNTIME} measures the CPU (peak RSS of a fresh process); "
            "on a GPU, ONNX Runtime's own memory arena is not the allocator the search caps: "
            f"use --device cpu, or --runtime {TORCH_RUNTIME} on the GPU"
        )
    from emobench.runtimes.onnx import check_available

    check_available(device)


def run_maxbatch(config: MaxBatchConfig, progress: ProgressFn | None = None) -> Report:
    config.validate()
    started = time.perf_counter()
    device = resolve_device(config.device)
    if ORT_RUNTIME in config.runtimes:
        check_ort_maxbatch(device)
    budget = resolve_budget(config, device)
    environment = fingerprint(device)
    say = progress or (lambda _d, _a, _b: None)
    results = []
    turns = [
        (dataclasses.replace(config, runtimes=(r,)), p)
        for r in config.runtimes
        for p in config.pipelines
    ]
    total = len(turns)
    for i, (one, pipeline) in enumerate(turns):
        runtime = f" [{one.runtime}]" if config.runtimes != (TORCH_RUNTIME,) else ""
        tag = f"{config.backbone}/{pipeline} {config.mode}{runtime}"

        def note(text: str, i: int = i, tag: str = tag) -> None:
            say(f"{tag}: {text}", i, total)

        if device.type == "cuda":
            results.append(_cuda_maxbatch(one, pipeline, device, budget, note))
        else:
            results.append(_cpu_maxbatch(one, pipeline, budget, note))
    say("done", total, total)
    return Report(
        kind="maxbatch",
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config={
            "backbone": config.backbone,
            "pipelines": list(config.pipelines),
            "mode": config.mode,
            "device": config.device,
            "resolved_device": str(device),
            "budget": config.budget,
            "budget_bytes": budget,
            "max_batch": config.max_batch,
            "margin": config.margin,
            "num_classes": config.num_classes,
            "runtimes": list(config.runtimes),
        },
        environment=environment,
        results=[],
        maxbatch=results,
    )


def _cuda_maxbatch(
    config: MaxBatchConfig,
    pipeline: str,
    device: torch.device,
    budget: int,
    note: Callable[[str], None],
) -> MaxBatchResult:
    total = device_memory_bytes(device)
    confirmation: dict[str, int | None] = {}
    with device_scope(device):
        try:
            model = build_model(config.backbone, pipeline, num_classes=config.num_classes)
            model = model.to(device)
            step = make_step(model, config.mode, device)
            hooks = cuda_hooks(device, model)
            try_batch = mb.guarded_try_batch(step, hooks)
            # one batch-1 step creates the context and the cuBLAS/cuDNN handles, so the memory
            # outside the allocator is all there when it is measured and charged to the budget
            started = time.perf_counter()
            first = try_batch(1)
            if first.outcome == mb.ERROR:  # an error, not "nothing fits"
                seconds = time.perf_counter() - started
                probe = mb.Probe(1, mb.ERROR, first.peak_bytes, seconds, first.message)
                note(f"batch 1: error: {first.message}")
                return _cuda_result(config, pipeline, budget, _failed_search(probe), None, {})
            outside = non_allocator_bytes(device)
            cap = allocator_cap(budget, outside, total)
            torch.cuda.set_per_process_memory_fraction(cap / total, device)

            def confirm_fresh(n: int) -> mb.ProbeOutcome:
                # the searching process steps aside (model and cache off the device), then a
                # fresh one runs batch n under the same allocator cap
                model.to("cpu")
                hooks.release()
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                note(f"confirming batch {n} in a fresh process")
                out, margin = _cuda_child_probe(config, pipeline, n, device, cap)
                confirmation["margin"] = margin
                return out

            def on_probe(p: mb.Probe) -> None:
                note(f"batch {p.batch_size}: {p.outcome}")
                # the budget charged `outside` once, after batch 1: measure it again after
                # each new largest batch that fit, so the report shows whether it grew
                # (not after the fresh-process confirmation: this process stepped aside then)
                fresh = "margin" in confirmation
                if p.outcome == mb.OK and not fresh and p.batch_size >= seen_outside["batch"]:
                    seen_outside.update(batch=p.batch_size, bytes=non_allocator_bytes(device))

            seen_outside = {"batch": 1, "bytes": outside}
            search = mb.search_max_batch(
                try_batch, config.max_batch, on_probe=on_probe, confirm_with=confirm_fresh
            )
            confirmation["outside_at_max"] = seen_outside["bytes"]
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    return _cuda_result(config, pipeline, budget, search, outside, confirmation)


def _failed_search(probe: mb.Probe) -> mb.SearchResult:
    return mb.SearchResult(0, False, [probe], error=probe.message)


def _cuda_result(
    config: MaxBatchConfig,
    pipeline: str,
    budget: int,
    search: mb.SearchResult,
    outside: int | None,
    confirmation: dict[str, int | None],
) -> MaxBatchResult:
    at_max = [p for p in search.probes if p.batch_size == search.max_batch and p.outcome == mb.OK]
    return MaxBatchResult(
        backbone=config.backbone,
        pipeline=pipeline,
        mode=config.mode,
        method="probed",
        budget_bytes=budget,
        max_batch=search.max_batch,
        safe_batch=mb.apply_margin(search.max_batch, config.margin),
        margin=config.margin,
        capped=search.capped,
        confirmed=search.confirmed,
        peak_bytes_at_max=at_max[-1].peak_bytes if at_max else None,
        bytes_per_extra_image=mb.bytes_per_extra_image(search.probes),
        probes=search.probes,
        error=search.error,
        reserved_bytes_at_max=at_max[-1].reserved_bytes if at_max else None,
        non_allocator_bytes=outside,
        confirmed_in=FRESH_PROCESS if "margin" in confirmation else None,
        confirm_margin_bytes=confirmation.get("margin") if search.confirmed else None,
        non_allocator_bytes_at_max=confirmation.get("outside_at_max"),
    )


def _cpu_maxbatch(
    config: MaxBatchConfig, pipeline: str, budget: int, note: Callable[[str], None]
) -> MaxBatchResult:
    if config.runtime == ORT_RUNTIME:
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="emobench-maxbatch-"))
        try:
            return _cpu_maxbatch_in(config, pipeline, budget, note, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return _cpu_maxbatch_in(config, pipeline, budget, note, None)


def _cpu_maxbatch_in(
    config: MaxBatchConfig,
    pipeline: str,
    budget: int,
    note: Callable[[str], None],
    folder: Path | None,
) -> MaxBatchResult:
    """The CPU search; `folder`: where --runtime onnxruntime exports the file (None: torch)."""
    onnx: dict[str, Any] | None = None
    if folder is not None:
        note("exporting to ONNX and checking parity")
        try:
            onnx = _export_for_maxbatch(config, pipeline, folder)
        except ModelError as exc:
            probe = mb.Probe(1, mb.ERROR, None, 0.0, str(exc)[:300])
            base = _result_base(config, pipeline, budget, [probe])
            return MaxBatchResult(
                **base,
                max_batch=0,
                safe_batch=0,
                capped=False,
                confirmed=None,
                peak_bytes_at_max=None,
                bytes_per_extra_image=None,
                error=str(exc),
            )
    probes, points = _fit_points(config, pipeline, budget, note, onnx)
    base = _result_base(config, pipeline, budget, probes)
    if len(points) < 2:
        failed = probes[-1] if probes else None
        return MaxBatchResult(
            **base,
            max_batch=points[-1][0] if points else 0,
            safe_batch=0,
            capped=False,
            confirmed=None,
            peak_bytes_at_max=None,
            bytes_per_extra_image=None,
            error=failed.message if failed and failed.outcome == mb.ERROR else None,
        )
    fit = mb.LinearFit.from_points(points)  # RSS growth of the step, from this process
    note("measuring a fresh process's memory with the model built")
    base_probe = _child_probe(config, pipeline, 0, budget, onnx)
    probes.append(base_probe)
    if base_probe.outcome != mb.OK or base_probe.peak_bytes is None:
        return MaxBatchResult(
            **base,
            max_batch=0,
            safe_batch=0,
            capped=False,
            confirmed=None,
            peak_bytes_at_max=None,
            bytes_per_extra_image=fit.per_image_bytes,
            error=base_probe.message,
            fit=fit,
        )
    child_base = base_probe.peak_bytes
    good, confirmed_peak, error = _confirm_in_children(
        config, pipeline, budget, child_base, fit, probes, note, onnx
    )
    predicted = child_base + fit.predict(good) if good else None
    return MaxBatchResult(
        **base,
        max_batch=good,
        safe_batch=mb.apply_margin(good, config.margin),
        capped=good == config.max_batch,
        confirmed=bool(good) if error is None else None,
        peak_bytes_at_max=confirmed_peak,
        # measured across the real range (fresh process -> confirmed batch), not the small fit
        bytes_per_extra_image=(confirmed_peak - child_base) / good
        if confirmed_peak and good
        else fit.per_image_bytes,
        error=error,
        fit=fit,
        predicted_peak_bytes=predicted,
        fit_error=(confirmed_peak - predicted) / confirmed_peak
        if confirmed_peak and predicted
        else None,
        child_base_bytes=child_base,
        confirmed_in=FRESH_PROCESS if good and error is None else None,
        confirm_margin_bytes=budget - confirmed_peak if confirmed_peak and error is None else None,
    )


def _confirm_in_children(
    config: MaxBatchConfig,
    pipeline: str,
    budget: int,
    child_base: int,
    fit: mb.LinearFit,
    probes: list[mb.Probe],
    note: Callable[[str], None],
    onnx: dict[str, Any] | None = None,
) -> tuple[int, int | None, str | None]:
    """Confirm the fitted batch with one real step in a fresh process, stepping up while real
    headroom is left and down when it did not fit: (batch confirmed or 0, its peak, error)."""
    target = fit.largest_batch_under(int(CPU_AIM * budget) - child_base, config.max_batch)
    confirmed_peak: int | None = None
    good = 0
    for _attempt in range(CPU_CONFIRM_ATTEMPTS):
        if target < 1 or target == good:
            break
        note(f"confirming batch {target} in a child process (one real step)")
        probe = _child_probe(config, pipeline, target, budget, onnx)
        probes.append(probe)
        if probe.outcome == mb.OK and probe.peak_bytes is not None:
            good, confirmed_peak = target, probe.peak_bytes
            step_up = _step_up(config, budget, child_base, target, probe.peak_bytes)
            if step_up is None:
                break
            target = step_up
            continue
        if probe.outcome == mb.ERROR:
            return good, confirmed_peak, probe.message
        if good:  # the step up did not fit: keep the confirmed batch
            break
        # Over budget or killed: aim under the budget by the measured excess.
        scale = CPU_BUDGET_SHRINK * budget / probe.peak_bytes if probe.peak_bytes else 0.5
        target = min(target - 1, int(target * scale))
    return good, confirmed_peak, None


def _step_up(
    config: MaxBatchConfig, budget: int, child_base: int, batch: int, peak_bytes: int
) -> int | None:
    """The next batch to confirm after `batch` fitted at `peak_bytes`, or None to stop there."""
    if budget - peak_bytes < CPU_REFINE_HEADROOM * budget:
        return None
    if batch >= config.max_batch:
        return None
    # Real headroom left: step up along the line through the fresh process's base and this
    # measured point, which spans the real range better than the small-batch fit.
    slope = (peak_bytes - child_base) / batch
    if slope <= 0:
        return None
    step = int((CPU_AIM * budget - peak_bytes) / slope)
    return min(config.max_batch, batch + max(step, 1))


def fit_batches(max_batch: int) -> Iterator[int]:
    """2, 4, 8, 16, then doubling (the caller stops when a step gets slow or big)."""
    n = CPU_FIT_BATCHES[0]
    while n <= max_batch:
        yield n
        n *= 2


def _fit_points(
    config: MaxBatchConfig,
    pipeline: str,
    budget: int,
    note: Callable[[str], None],
    onnx: dict[str, Any] | None = None,
) -> tuple[list[mb.Probe], list[tuple[int, int]]]:
    """RSS growth of this process (peak minus before) running the step at growing batches.

    Beyond CPU_FIT_BATCHES the batch keeps doubling while a step takes under
    CPU_FIT_STEP_S and grows memory by under CPU_FIT_MEMORY_SHARE of the budget: a cheap
    pipeline gets a slope measured over a wide range, an expensive one stays quick.
    """
    if onnx is not None:
        step = onnx_step(onnx)
    else:
        model = build_model(config.backbone, pipeline, num_classes=config.num_classes)
        step = make_step(model, config.mode, torch.device("cpu"))
    probes: list[mb.Probe] = []
    points: list[tuple[int, int]] = []
    for n in fit_batches(config.max_batch):
        note(f"fitting memory, batch {n}")
        started = time.perf_counter()
        try:
            before, peak, _method = process_peak_rss(partial(step, n))
        except Exception as exc:
            kind = mb.OOM if mb.is_oom(exc) else mb.ERROR
            probes.append(mb.Probe(n, kind, None, time.perf_counter() - started, str(exc)[:200]))
            break
        seconds = time.perf_counter() - started
        probes.append(mb.Probe(n, mb.OK, peak, seconds, "fit point"))
        points.append((n, peak - before))
        if n >= CPU_FIT_BATCHES[-1] and (
            seconds > CPU_FIT_STEP_S or peak - before > CPU_FIT_MEMORY_SHARE * budget
        ):
            break
    return probes, points


def _export_for_maxbatch(config: MaxBatchConfig, pipeline: str, folder: Path) -> dict[str, Any]:
    """The pipeline's model exported into `folder` and checked against torch (ExportError
    when that fails): what the in-process fit and the fresh processes open."""
    from emobench.runtimes.onnx import PARITY_BATCH, OrtSettings, deploy

    torch.manual_seed(0)
    model = build_model(config.backbone, pipeline, num_classes=config.num_classes)
    pipe = Pipeline(pipeline, model, torch.device("cpu"), num_classes=config.num_classes)
    probe = pipe.example_input(PARITY_BATCH, random=True)
    threads = torch.get_num_threads()
    deployed = deploy(pipe, folder, OrtSettings(intra_op_threads=threads), probe)
    return {"path": str(deployed.path), "input_size": pipe.input_size, "intra_op_threads": threads}


def onnx_step(onnx: dict[str, Any]) -> Callable[[int], None]:
    """One fit probe's work with the exported file: a batch through a session whose memory
    arena is off, so each probe's memory is freed after it and the next one's growth is its
    own (the fresh processes that confirm run with the arena on, as a deployment does)."""
    from emobench.runtimes.onnx import import_ort
    from emobench.runtimes.ort_child import session_options

    ort = import_ort()
    opts = session_options(ort, onnx | {"cpu_arena": False})
    session = ort.InferenceSession(
        onnx["path"], sess_options=opts, providers=["CPUExecutionProvider"]
    )
    name, size = session.get_inputs()[0].name, int(onnx["input_size"])

    def step(n: int) -> None:
        session.run(None, {name: np.full((n, 3, size, size), 0.5, dtype=np.float32)})

    return step


def _result_base(
    config: MaxBatchConfig, pipeline: str, budget: int, probes: list[mb.Probe]
) -> dict[str, Any]:
    return {
        "runtime": config.runtime,
        "backbone": config.backbone,
        "pipeline": pipeline,
        "mode": config.mode,
        "method": "predicted+confirmed",
        "budget_bytes": budget,
        "margin": config.margin,
        "probes": probes,
    }


FRESH_PROCESS = "fresh process"


def _child_args(config: MaxBatchConfig, pipeline: str, batch: int, **extra: Any) -> str:
    return json.dumps(
        {
            "backbone": config.backbone,
            "pipeline": pipeline,
            "mode": config.mode,
            "batch": batch,
            "num_classes": config.num_classes,
            # a plugin's folder, passed explicitly: the child never imports from its cwd
            "plugin_path": get_backbone(config.backbone).plugin_path,
        }
        | extra
    )


def _child_probe(
    config: MaxBatchConfig,
    pipeline: str,
    batch: int,
    budget: int,
    onnx: dict[str, Any] | None = None,
) -> mb.Probe:
    """Run one real step at `batch` in a fresh process and read its peak RSS (`onnx`: the
    exported file in a torch-free process, runtimes.ort_batch)."""
    if onnx is not None:
        from emobench.runtimes.ort_batch import ENTRY

        child = run_child(ENTRY, json.dumps(onnx | {"batch": batch}), CHILD_TIMEOUT_S)
    else:
        child = run_child(CHILD_ENTRY, _child_args(config, pipeline, batch), CHILD_TIMEOUT_S)
    if child.timed_out:
        return mb.Probe(batch, mb.ERROR, None, child.seconds, "child timed out")
    seconds = child.seconds
    if child.killed:  # SIGKILL: the kernel's OOM killer
        return mb.Probe(batch, mb.OOM, None, seconds, "child killed (SIGKILL, out of memory)")
    out = child.last_json()
    if not isinstance(out, dict):
        return mb.Probe(batch, mb.ERROR, None, seconds, f"child failed: {child.last_error_line()}")
    if out["outcome"] != mb.OK:
        return mb.Probe(batch, out["outcome"], out.get("peak_bytes"), seconds, out.get("message"))
    peak = int(out["peak_bytes"])
    if peak > budget:
        return mb.Probe(batch, mb.OVER_BUDGET, peak, seconds, "peak RSS over the budget")
    what = "fresh process, model built" if batch == 0 else "confirmed in a child"
    margin = f", {mib(budget - peak)} of the budget left" if batch else ""
    return mb.Probe(batch, mb.OK, peak, seconds, f"{what} ({out['method']}){margin}")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _cuda_child_probe(
    config: MaxBatchConfig,
    pipeline: str,
    batch: int,
    device: torch.device,
    cap: int,
) -> tuple[mb.ProbeOutcome, int | None]:
    """Run one step at `batch` in a fresh process on `device`, its allocator capped at `cap`
    bytes (the search's cap: the budget less what was in use outside the allocator):
    (outcome, bytes of the cap left at the step's peak reserved)."""
    argument = _child_args(config, pipeline, batch, device=str(device), cap=cap)
    child = run_child(CHILD_ENTRY, argument, CHILD_TIMEOUT_S)
    if child.timed_out:
        return mb.ProbeOutcome(mb.ERROR, message="fresh process timed out"), None
    out = child.last_json()
    if not isinstance(out, dict) or out.get("outcome") not in (mb.OK, mb.OOM, mb.ERROR):
        why = f"exit {child.returncode}: {child.last_error_line()}"
        return mb.ProbeOutcome(mb.ERROR, message=f"fresh process failed: {why}"), None
    peak, reserved = out.get("peak_bytes"), out.get("reserved_bytes")
    if out["outcome"] != mb.OK:
        message = f"fresh process: {out.get('message')}"
        return mb.ProbeOutcome(out["outcome"], peak, message, reserved), None
    margin = cap - int(reserved) if reserved is not None else None
    left = f"{mib(margin)} of the budget left" if margin is not None else "margin unknown"
    message = f"{FRESH_PROCESS}: fits under the same allocator cap ({mib(cap)}), {left}"
    return mb.ProbeOutcome(mb.OK, peak, message, reserved), margin


CHILD_ENTRY = "emobench.scenarios.maxbatch:_child_main"  # run by launchers.child


def _child_main(raw: str) -> None:
    """Child process: build the model, run one step at the batch, print its peak as JSON.

    On CPU, batch 0 builds the model only and reports the process's RSS then: the fixed cost of
    a fresh process (interpreter, torch, weights) that the in-process fit cannot see. On CUDA
    ("device" given) the step runs under the allocator cap "cap", after a batch-1 step that
    creates the library handles, as the search ran it.
    """
    args = json.loads(raw)
    if args.get("plugin_path"):
        from emobench.models import plugin

        plugin.import_from_cwd = False
        sys.path.insert(0, args["plugin_path"])
    model = build_model(args["backbone"], args["pipeline"], num_classes=args["num_classes"])
    if args.get("device", "cpu") != "cpu":
        print(json.dumps(_cuda_child_step(model, args)))
        return
    step = make_step(model, args["mode"], torch.device("cpu"))
    result: dict[str, object]
    if args["batch"] == 0:
        before, _peak, method = process_peak_rss(lambda: None)
        print(json.dumps({"outcome": mb.OK, "peak_bytes": before, "method": method}))
        return
    try:
        _before, peak, method = process_peak_rss(lambda: step(args["batch"]))
        result = {"outcome": mb.OK, "peak_bytes": peak, "method": method}
    except Exception as exc:
        kind = mb.OOM if mb.is_oom(exc) else mb.ERROR
        result = {"outcome": kind, "message": f"{type(exc).__name__}: {str(exc)[:200]}"}
    print(json.dumps(result))


def _cuda_child_step(model: EmotionNet, args: dict[str, Any]) -> dict[str, object]:
    """The fresh CUDA process's step: batch 1 (handles), then the cap, then the batch."""
    device = torch.device(args["device"])
    with device_scope(device):
        model = model.to(device)
        try_batch = mb.guarded_try_batch(
            make_step(model, args["mode"], device), cuda_hooks(device, model)
        )
        first = try_batch(1)
        if first.outcome != mb.OK:
            return {"outcome": first.outcome, "message": f"batch 1: {first.message}"}
        total = device_memory_bytes(device)
        free = int(torch.cuda.mem_get_info(device)[0]) + int(torch.cuda.memory_reserved(device))
        torch.cuda.set_per_process_memory_fraction(args["cap"] / total, device)
        out = try_batch(args["batch"])
        result: dict[str, object] = {
            "outcome": out.outcome,
            "peak_bytes": out.peak_bytes,
            "reserved_bytes": out.reserved_bytes,
            "method": "cuda allocator",
        }
        if out.outcome != mb.OK:
            short = f" (only {mib(free)} was free for it: the device is fuller than the cap)"
            result["message"] = f"{out.message}{short if free < args['cap'] else ''}"
        return result


if __name__ == "__main__":
    _child_main(sys.argv[1])

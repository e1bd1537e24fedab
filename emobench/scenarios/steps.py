"""The step plan of a compare run, the progress counter that reads it, and --time-budget."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from emobench.config import RunConfig
from emobench.measure.contention import ContentionMonitor
from emobench.measure.timing import STOP_BUDGET, LoopSettings, Watchdog
from emobench.results import RunBudget
from emobench.results.metrics import DIRECT, UPSCALE
from emobench.results.progress import ProgressFn

# the kinds of step a run announces; per-batch kinds carry the batch size
LIMITS = "device limits"
INIT = "one-time initialisation"
BUILD = "build"
COMPILE = "compile"
LATENCY = "latency"
COUNTS = "parameter count and FLOPs"
PREPROCESS_PER_IMAGE = "preprocess per-image"
PREPROCESS_BATCHED = "preprocess batched"
SHARED = "throughput and end to end"  # CPU: both from the same calls
THROUGHPUT = "throughput"
END_TO_END = "end to end"
MEMORY = "peak memory"
TRAIN = "train"
TRANSFER = "transfer"
EXPORT = "export"  # a runtime other than torch: export, parity check (and int8 quantization)
FRESH_START = "fresh start"  # the exported file opened in a fresh process


class Step(NamedTuple):
    """One progress step of the plan: its kind, and its batch size where it has one."""

    kind: str
    batch_size: int | None = None


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """Every progress step a run takes, decided once from the config and the device: the
    measuring code announces a step only where the plan lists it, and the progress total is
    counted from the same lists, so the two cannot drift apart."""

    run: tuple[Step, ...]  # once, before any pipeline
    pipeline: tuple[Step, ...]  # every pipeline, in measure_pipeline
    paired: tuple[Step, ...]  # every backbone, both pipelines interleaved (empty unless paired)
    n_backbones: int
    n_pipelines: int
    interleaved: bool  # headline loops wait for the other pipeline (see `pairs`)
    memory_batch: int | None  # the batch size whose inference peak memory is measured
    n_variants: int = 1  # runtime variants, each measuring every backbone and pipeline
    # the steps a pipeline of a runtime other than torch adds (export, fresh start), and how
    # many of the variants take them
    runtime: tuple[Step, ...] = ()
    n_runtime_variants: int = 0

    @property
    def total(self) -> int:
        """Steps in the whole run."""
        per_backbone = self.n_pipelines * len(self.pipeline) + len(self.paired)
        per_variant = self.n_backbones * per_backbone
        exports = self.n_runtime_variants * self.n_backbones * self.n_pipelines * len(self.runtime)
        return len(self.run) + self.n_variants * per_variant + exports

    def takes(self, kind: str) -> bool:
        """Whether every pipeline takes steps of this kind (at any batch size)."""
        return any(s.kind == kind for s in self.pipeline)


def pairs(config: RunConfig) -> bool:
    """Whether headline timings are measured in interleaved rounds of both pipelines."""
    return (
        config.paired
        and set(config.pipelines) == {UPSCALE, DIRECT}
        and config.compile == "none"  # compiled graphs are released between pipelines
        and "infer" in config.modes
    )


def step_plan(config: RunConfig, device: torch.device) -> StepPlan:
    """The steps `config` takes on `device`, in the order they are announced."""
    wanted = set(config.measurements)
    infer = "infer" in config.modes
    interleaved = pairs(config)
    memory_batch = max(config.batch_sizes) if infer and "memory" in wanted else None
    # the loops that pairing interleaves
    latency = [Step(LATENCY)] if infer and "latency" in wanted else []
    preprocess: list[Step] = []
    if "preprocess" in wanted:
        preprocess = [Step(PREPROCESS_PER_IMAGE), Step(PREPROCESS_BATCHED)]
    batches = {bs: _headline_batch(config, device, bs) for bs in config.batch_sizes}
    pipeline = [Step(BUILD)]
    if config.compile != "none":
        pipeline.append(Step(COMPILE))
    if not interleaved:
        pipeline += latency
    pipeline.append(Step(COUNTS))
    if not interleaved:
        pipeline += preprocess
    for bs in config.batch_sizes:
        # peak memory has a step of its own unless this pipeline's headline loop at this batch
        # size takes it along (paired, those loops come later, both pipelines together)
        if bs == memory_batch and (interleaved or not batches[bs]):
            pipeline.append(Step(MEMORY, bs))
        if not interleaved:
            pipeline += batches[bs]
    if "train" in config.modes:
        pipeline += [Step(TRAIN, bs) for bs in config.batch_sizes]
    if device.type == "cuda" and "transfer" in wanted:
        pipeline += [Step(TRANSFER, bs) for bs in config.batch_sizes]
    paired = [*latency, *preprocess, *(s for bs in config.batch_sizes for s in batches[bs])]
    run = [Step(LIMITS)] if "efficiency" in wanted else []
    variants = config.variants
    runtime = [Step(EXPORT)]
    if infer and "latency" in wanted:
        runtime.append(Step(FRESH_START))
    return StepPlan(
        run=(*run, Step(INIT)),
        pipeline=tuple(pipeline),
        paired=tuple(paired) if interleaved else (),
        n_backbones=len(config.backbones),
        n_pipelines=len(config.pipelines),
        interleaved=interleaved,
        memory_batch=memory_batch,
        n_variants=len(variants),
        runtime=tuple(runtime),
        n_runtime_variants=sum(v.runtime != "torch" for v in variants),
    )


def _headline_batch(config: RunConfig, device: torch.device, batch_size: int) -> list[Step]:
    """The inference loops at one batch size (none without the infer mode)."""
    wanted = set(config.measurements)
    if "infer" not in config.modes:
        return []
    if device.type == "cpu" and {"throughput", "end_to_end"} <= wanted:
        return [Step(SHARED, batch_size)]  # one loop times both
    kinds = ((THROUGHPUT, "throughput"), (END_TO_END, "end_to_end"))
    return [Step(kind, batch_size) for kind, name in kinds if name in wanted]


class Steps:
    """Announces each step to the progress callback, counted against the plan's total."""

    def __init__(self, plan: StepPlan, progress: ProgressFn) -> None:
        self.total = plan.total
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
        self.progress(desc, self.done, self.total)  # (description, steps done, steps in total)
        self.done += 1


def loop_settings(config: RunConfig) -> LoopSettings:
    """The stopping rule a config asks for."""
    return LoopSettings(
        warmup_iters=config.warmup_iters,
        min_iters=config.min_iters,
        min_time_s=config.min_time_s,
        max_time_s=config.max_time_s,
        target_ci=config.target_ci,
    )


MIN_GRACE_S = 0.5  # the least a measurement near or past the end of --time-budget still gets


class Budget:
    """--time-budget: what is left is shared equally among the steps left (each loop's cap), and
    no call may run past the budget's end (the watchdog). A measurement that starts with less
    than a grace left still gets the grace, one step's share of the budget (at least
    MIN_GRACE_S): a fast model takes its minimum samples, a slow one is cut after the grace."""

    def __init__(self, total_s: float | None, clock: Callable[[], float] = time.perf_counter):
        self.total_s = total_s
        self.clock = clock
        self.started = clock()
        self.exhausted_at: str | None = None

    def settings(self, base: LoopSettings, steps: Steps) -> LoopSettings:
        """`base`, capped at this step's share of the time left."""
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

    def watchdog(self, steps: Steps) -> Watchdog:
        """The per-call bound of the measurement about to start: none without --time-budget;
        else what is left of the budget, or the grace when that is less."""
        if self.total_s is None:
            return Watchdog(None)
        left = self.total_s - (self.clock() - self.started)
        budget = f"--time-budget {self.total_s:g} s"
        grace = max(self.total_s / max(steps.total, 1), MIN_GRACE_S)
        if left > grace:
            return Watchdog(left, f"the {left:.3g} s left of {budget}")
        if left <= 0 and self.exhausted_at is None:
            self.exhausted_at = steps.current
        return Watchdog(grace, f"the {grace:.3g} s a measurement still gets at the end of {budget}")

    def record(self) -> RunBudget | None:
        """The budget as the report records it; None without --time-budget."""
        if self.total_s is None:
            return None
        return RunBudget(self.total_s, self.clock() - self.started, self.exhausted_at)

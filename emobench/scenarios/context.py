"""What every measurement of one compare run shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from emobench.config import RunConfig, Variant
from emobench.measure import nvml as nvml_mod
from emobench.measure.limits import DeviceLimits
from emobench.measure.timing import CallCut, LoopSettings, Watchdog
from emobench.results.measurements import MonitorResult
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.parts import _gpu_monitor, monitor_pass
from emobench.scenarios.steps import Budget, StepPlan, Steps

T = TypeVar("T")


@dataclass
class Deferred:
    """A measured pipeline whose headline loops wait for the other pipeline (paired mode)."""

    pipe: Pipeline
    x1: torch.Tensor
    host: torch.Tensor
    cold_ms: float | None
    warm_batch: int | None  # the batch size the peak-memory call already warmed


@dataclass
class RunContext:
    """What every measurement of one run shares."""

    config: RunConfig
    device: torch.device
    plan: StepPlan
    steps: Steps
    budget: Budget
    limits: DeviceLimits | None = None
    deferred: dict[str, Deferred] = field(default_factory=dict)
    cuts: list[str] = field(default_factory=list)  # measurements the watchdog stopped, and why
    variant: Variant = field(default_factory=Variant)  # the runtime variant being measured
    export_dir: Path | None = None  # this run's own folder for exported files (runtimes)
    exported: dict[Path, tuple[str, int]] = field(default_factory=dict)  # fp32 files written
    settings_in_force: dict[str, Any] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        """What step descriptions add to name the variant: nothing in a torch-only run."""
        if len(self.config.variants) == 1 and self.variant.label == "torch":
            return ""
        return f" [{self.variant.label}]"

    def watched(self, measure: Callable[[Watchdog], T], what: str | None = None) -> T | None:
        """`measure(watchdog)` under the watchdog of the measurement about to start (the run's
        --time-budget); None when a call was cut before anything was measured. Either way a
        cut is noted for the report, as `what` (the current step by default)."""
        watchdog = self.budget.watchdog(self.steps)
        try:
            with watchdog:
                result = measure(watchdog)
        except CallCut as cut:
            self.note_cut(cut.reason, measured=False, what=what)
            return None
        if watchdog.cut is not None:
            self.note_cut(watchdog.cut, measured=True, what=what)
        return result

    def note_cut(self, reason: str, measured: bool, what: str | None = None) -> None:
        """A note for the report: the step (or `what`), what is left of it, and why."""
        kept = "stopped early (the samples before the cut are kept)" if measured else "not measured"
        self.cuts.append(f"{what or self.steps.current}: {kept}: {reason}")
        if self.budget.exhausted_at is None:
            self.budget.exhausted_at = self.steps.current

    def share_s(self, cap_s: float) -> float:
        """The seconds the measurement about to start may take: `cap_s`, or this step's share
        of what is left of --time-budget when that is less."""
        return self.budget.settings(LoopSettings(max_time_s=cap_s), self.steps).max_time_s

    def energy_pass(
        self, fn: Callable[[], object], batch_size: int, passes_left: int = 1
    ) -> MonitorResult | None:
        """The NVML pass of `fn` (see parts.monitor_pass) on this run's device: its window at
        most this step's share of --time-budget, split evenly among the `passes_left` energy
        passes that still share it (the paired loops' two come after the last step), each call
        under the watchdog; None without NVML or CUDA (no call made), or when a call was cut
        before the pass ended."""
        monitor = _gpu_monitor(self.device, True)
        passes = max(1, passes_left)
        limit = self.share_s(nvml_mod.ENERGY_MAX_WINDOW_S * passes) / passes
        return self.watched(
            lambda watchdog: monitor_pass(monitor, partial(watchdog.call, fn), batch_size, limit)
        )

    @property
    def defer(self) -> bool:
        """Whether headline loops wait for the other pipeline (interleaved pairs)."""
        return self.plan.interleaved

"""What every measurement of one compare run shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from emobench.config import RunConfig
from emobench.measure.limits import DeviceLimits
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.steps import Budget, StepPlan, Steps


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

    @property
    def defer(self) -> bool:
        """Whether headline loops wait for the other pipeline (interleaved pairs)."""
        return self.plan.interleaved

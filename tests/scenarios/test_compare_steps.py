"""The compare run's step plan: the progress total it announces is the steps it takes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from emobench.config import RunConfig
from emobench.scenarios.compare import run_benchmark
from emobench.scenarios.steps import (
    BUILD,
    COUNTS,
    END_TO_END,
    INIT,
    LATENCY,
    LIMITS,
    MEMORY,
    PREPROCESS_BATCHED,
    PREPROCESS_PER_IMAGE,
    SHARED,
    THROUGHPUT,
    TRAIN,
    TRANSFER,
    Step,
    step_plan,
)
from tests.conftest import TINY

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only planned for: nothing runs on it
PAIRED_TAG = "resnet18: both pipelines, interleaved: "


def tiny_config(**overrides: Any) -> RunConfig:
    return RunConfig(**{**TINY, "backbones": ("resnet18",), "device": "cpu", **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"mode": "infer"},
        {"mode": "both", "batch_sizes": (2, 3)},
        {"mode": "infer", "batch_sizes": (3, 2), "paired": False},
        {"mode": "train", "batch_sizes": (2, 3)},
        {"measurements": ("throughput", "memory"), "batch_sizes": (2, 3)},
    ],
    ids=["infer-one-batch", "both-two-batches", "unpaired-two-batches", "train", "no-e2e"],
)
def test_progress_total_is_the_number_of_steps_taken(overrides: dict[str, Any]) -> None:
    config = tiny_config(**overrides)
    calls: list[tuple[str, int, int]] = []
    run_benchmark(config, progress=lambda desc, done, total: calls.append((desc, done, total)))
    *steps, done = calls
    plan = step_plan(config, CPU)
    assert {total for _, _, total in calls} == {len(steps)} == {plan.total}
    assert [n for _, n, _ in steps] == list(range(len(steps)))
    assert done == ("done", len(steps), len(steps))
    # and each part of the plan is announced where it is taken
    for pipeline in config.pipelines:
        taken = [d for d, _, _ in steps if d.startswith(f"resnet18/{pipeline}: ")]
        assert len(taken) == len(plan.pipeline)
    assert len([d for d, _, _ in steps if d.startswith(PAIRED_TAG)]) == len(plan.paired)
    per_pipeline = len(config.pipelines) * len(plan.pipeline)
    assert len(steps) - per_pipeline - len(plan.paired) == len(plan.run)


def test_paired_plan_on_the_cpu_leaves_the_headline_loops_to_the_interleaved_rounds() -> None:
    plan = step_plan(tiny_config(batch_sizes=(2, 3)), CPU)
    assert plan.interleaved and plan.memory_batch == 3
    assert plan.run == (Step(LIMITS), Step(INIT))
    assert plan.pipeline == (Step(BUILD), Step(COUNTS), Step(MEMORY, 3))
    assert plan.paired == (
        Step(LATENCY),
        Step(PREPROCESS_PER_IMAGE),
        Step(PREPROCESS_BATCHED),
        Step(SHARED, 2),
        Step(SHARED, 3),
    )
    assert plan.total == 2 + 2 * 3 + 5


def test_unpaired_plan_on_cuda_times_each_loop_and_transfer_per_batch() -> None:
    plan = step_plan(tiny_config(batch_sizes=(2, 3), paired=False, mode="both"), CUDA)
    assert not plan.interleaved and plan.paired == ()
    assert plan.pipeline == (
        Step(BUILD),
        Step(LATENCY),
        Step(COUNTS),
        Step(PREPROCESS_PER_IMAGE),
        Step(PREPROCESS_BATCHED),
        Step(THROUGHPUT, 2),
        Step(END_TO_END, 2),
        Step(THROUGHPUT, 3),  # peak memory rides along with the largest batch's loops
        Step(END_TO_END, 3),
        Step(TRAIN, 2),
        Step(TRAIN, 3),
        Step(TRANSFER, 2),
        Step(TRANSFER, 3),
    )
    assert plan.total == 2 + 2 * 13


def test_peak_memory_has_a_step_of_its_own_only_without_a_loop_to_ride_along() -> None:
    alone = step_plan(tiny_config(measurements=("memory",), paired=False), CPU)
    assert Step(MEMORY, 2) in alone.pipeline
    along = step_plan(tiny_config(measurements=("memory", "throughput"), paired=False), CPU)
    assert Step(MEMORY, 2) not in along.pipeline and Step(THROUGHPUT, 2) in along.pipeline
    train_only = step_plan(tiny_config(mode="train"), CPU)
    assert train_only.memory_batch is None and not train_only.takes(MEMORY)

"""The compare scenario: one-time costs paid before any pipeline and the order alternated, every
measurement in the report, the time budget, one shared loop for throughput and end to end."""

from __future__ import annotations

import pytest
import torch

from emobench import results as R
from emobench.config import RunConfig
from emobench.measure.timing import STOP_BUDGET
from emobench.scenarios import compare as runner_mod
from emobench.scenarios.compare import SHARED_TIMER, run_benchmark
from tests.conftest import TINY, tiny_model


def test_one_time_costs_are_paid_before_any_pipeline_and_order_alternates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    real_pay = runner_mod.pay_one_time_costs

    def pay(device, modes=("infer",)):
        events.append("init")
        real_pay(device, modes)

    def build(backbone, pipeline, **kwargs):
        events.append(f"build {backbone}/{pipeline}")
        return tiny_model(backbone, pipeline, **kwargs)

    monkeypatch.setattr(runner_mod, "pay_one_time_costs", pay)
    monkeypatch.setattr(runner_mod, "build_model", build)
    config = RunConfig(
        backbones=("resnet18", "vgg16"), device="cpu", measurements=("latency",), **TINY
    )  # type: ignore[arg-type]
    report = runner_mod.run_benchmark(config)
    assert events == [
        "init",
        "build resnet18/upscale224",
        "build resnet18/direct48",
        "build vgg16/direct48",  # every other backbone starts with the other pipeline
        "build vgg16/upscale224",
    ]
    assert report.config["measure_order"] == [
        "resnet18/upscale224",
        "resnet18/direct48",
        "vgg16/direct48",
        "vgg16/upscale224",
    ]
    # the report keeps the config's order whatever order the measurements ran in
    assert [(r.backbone, r.pipeline) for r in report.results] == [
        ("resnet18", "upscale224"),
        ("resnet18", "direct48"),
        ("vgg16", "upscale224"),
        ("vgg16", "direct48"),
    ]


def test_pay_one_time_costs_runs_on_the_cpu_for_both_modes() -> None:

    runner_mod.pay_one_time_costs(torch.device("cpu"), ("infer", "train"))


def test_time_budget_runs_out_and_the_report_says_where() -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", time_budget_s=1e-6, **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.budget is not None and report.budget.time_budget_s == 1e-6
    assert report.budget.exhausted_at is not None
    assert any(note.startswith("--time-budget 1e-06 s ran out at:") for note in report.notes)
    up = report.results[0]
    assert up.latency is not None and up.latency.stop_reason == STOP_BUDGET
    assert up.latency.stats.n == TINY["min_iters"]  # the minimum, no more


def test_cpu_throughput_and_end_to_end_share_one_loop() -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    for r in run_benchmark(config).results:
        (model_only,), (e2e,) = r.throughput, r.end_to_end
        assert model_only.timing.timer == e2e.timing.timer == SHARED_TIMER
        assert model_only.timing.stats.n == e2e.timing.stats.n
        # each end-to-end sample contains its model-only sample
        for m, e in zip(model_only.timing.stats.samples, e2e.timing.stats.samples, strict=True):
            assert e >= m
        # the peak-memory call warmed this batch size: no cold call inside the loop
        assert model_only.timing.cold_start_ms is None
        assert r.memory.peak is not None and r.memory.peak.tensor_peak_bytes


def test_report_has_every_measurement(real_report: R.Report) -> None:
    assert [r.pipeline for r in real_report.results] == ["upscale224", "direct48"]
    up, dn = real_report.results
    assert (up.input_size, dn.input_size) == (224, 48)
    assert up.memory.input_bytes_per_image == 3 * 224 * 224 * 4
    assert dn.memory.input_bytes_per_image == 3 * 48 * 48 * 4
    assert up.params.unused == 0 and dn.params.unused == 0
    assert up.params.total == 11_180_103
    assert up.flops_per_image and dn.flops_per_image
    assert up.latency is not None and up.latency.stats.n >= 2 and up.latency.stats.unit == "ms"
    assert [b.batch_size for b in up.throughput] == [2]
    assert [b.batch_size for b in dn.end_to_end] == [2]
    assert {p.path for p in up.preprocess} == {"per_image_pil", "batched_tensor"}
    assert up.memory.peak is not None and up.memory.peak.cpu_peak_rss_growth_bytes is not None
    assert up.memory.peak.cuda_peak_allocated_bytes is None  # CPU: absent, never 0
    env = real_report.environment
    assert env["device"] == "cpu" and env["num_threads"] >= 1 and env["gpu_name"] is None
    assert real_report.config["backbones"] == ["resnet18"]
    assert real_report.wall_time_s > 0


def test_latency_cold_start_is_the_models_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import emobench.scenarios.compare as runner_mod

    order: list[str] = []
    real_time_loop, real_count = runner_mod.time_loop, runner_mod.count_parameters

    def time_loop(*args, **kwargs):
        order.append("timed")
        return real_time_loop(*args, **kwargs)

    def count_parameters(*args, **kwargs):
        order.append("counted")
        return real_count(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "time_loop", time_loop)
    monkeypatch.setattr(runner_mod, "count_parameters", count_parameters)
    config = RunConfig(  # type: ignore[arg-type]
        backbones=("resnet18",), pipelines=("direct48",), device="cpu", **TINY
    )
    steps: list[tuple[str, int, int]] = []
    run_benchmark(config, progress=lambda d, a, b: steps.append((d, a, b)))
    assert order[:2] == ["timed", "counted"]  # latency first, then the counting forward
    assert steps[-1][1] == steps[-1][2]  # the step total matches the steps taken
    assert [a for _, a, _ in steps] == list(range(len(steps)))

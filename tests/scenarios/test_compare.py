"""Measurement methods: cold start not biased by pipeline order, tail percentiles only from
enough samples, the median's interval in the table."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from emobench.config import RunConfig
from emobench.render.compare import render_compare
from emobench.scenarios import compare as runner_mod
from emobench.stats.summary import MIN_SAMPLES_FOR, Stats
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
    import torch

    runner_mod.pay_one_time_costs(torch.device("cpu"), ("infer", "train"))


@pytest.mark.parametrize(("q", "attr"), [(90, "p90"), (99, "p99")])
def test_tail_percentiles_need_enough_samples(q: int, attr: str) -> None:
    need = MIN_SAMPLES_FOR[q]
    few = Stats.from_samples([float(i) for i in range(need - 1)], "ms")
    assert getattr(few, attr) is None  # would just be (near) the maximum
    enough = Stats.from_samples([float(i) for i in range(need)], "ms")
    assert getattr(enough, attr) == pytest.approx((need - 1) * q / 100)


def test_table_shows_the_medians_interval_and_why_tails_are_missing() -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", measurements=("latency",), **TINY)  # type: ignore[arg-type]
    config = RunConfig(**{**config.__dict__, "min_iters": 8})
    report = runner_mod.run_benchmark(config)
    console = Console(file=io.StringIO(), width=220)
    render_compare(report, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "latency b1, median" in text and "±" in text
    assert "latency b1, p90" not in text  # 8 samples: no p90
    assert "p90 needs >= 64 samples and p99 >= 662" in text and "n too small" in text

"""The compare table: the median's interval, missing tails explained, the machine class, a busy
run."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from emobench.config import RunConfig
from emobench.machine import class_id
from emobench.render.compare import render_compare
from emobench.scenarios import compare as runner_mod
from emobench.scenarios.compare import run_benchmark
from tests.conftest import TINY
from tests.factories import make_report, other_class


def test_busy_run_is_reported_under_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = {"s": 0.0}

    def others_everywhere() -> float:
        busy["s"] += 1.0  # every look at the counters finds another core-second used
        return busy["s"]

    real = runner_mod.ContentionMonitor
    monkeypatch.setattr(
        runner_mod,
        "ContentionMonitor",
        lambda probe: real(probe, busy_cpu_s=others_everywhere),
    )
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.contention is not None and report.contention.busy
    assert report.contention.note in report.notes
    console = Console(file=io.StringIO(), width=200)
    render_compare(report, console)
    assert "machine busy: other processes used" in console.file.getvalue()  # type: ignore[attr-defined]


def test_compare_table_names_the_machine_class() -> None:
    from rich.console import Console

    from emobench.render.compare import render_compare

    console = Console(width=400, record=True)
    render_compare(other_class(make_report()), console)
    lines = console.export_text().splitlines()
    # the title wraps to the table's width: read it up to the table's top border
    title = " ".join(
        line.strip() for line in lines[: next(i for i, x in enumerate(lines) if "┏" in x)]
    )
    assert title == (
        "vgg16: upscale224 vs direct48 on cpu (AMD EPYC), torch 2.14.1, 2 threads, "
        f"machine class {class_id(other_class(make_report()).environment)}"
    )


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

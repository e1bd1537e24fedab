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


# -- issue #22: efficiency against a measured ceiling --------------------------------------------


def _with_ceiling(raw: dict[str, float], kernel: str | None = "conv3x3 512->512 @6x6 b8 (v/d)"):
    """make_report with limits and an efficiency per pipeline at the raw fractions given."""
    import dataclasses

    from emobench.results import Efficiency
    from emobench.results.measurements import DeviceLimits, KernelRate

    report = make_report()
    limits = DeviceLimits(
        2e11, "fp32", 512, 3e10, 1 << 26, elapsed_s=1.9, matmul_math="ieee fp32",
        ceiling_flops_per_s=2.4e11 if kernel else None, ceiling_kernel=kernel,
        kernels=[KernelRate("matmul n=512", 2e11), KernelRate("matmul n=1024", 1.8e11),
                 KernelRate("conv3x3 512->512 @6x6 b8", 2.4e11, ["v/d"])],
        conv_backend="oneDNN", peak_flops_per_s=1.66e11,
        peak_how="2 cores x 2596 MHz x 16 FMA/cycle (AVX-512 on two 256-bit FMA units (AMD "
        "Zen 4)) x 2 FLOP per FMA; clock from /proc/cpuinfo 'cpu MHz' (turbo can run above it)",
    )  # fmt: skip
    results = [
        dataclasses.replace(
            r,
            efficiency=Efficiency(
                8,
                raw[r.pipeline] * 2.4e11,
                raw[r.pipeline],
                {},
                {},
                kernel,
                raw[r.pipeline] > 1,
            ),
        )
        for r in report.results
    ]
    return dataclasses.replace(report, limits=limits, results=results)


def test_a_fraction_over_the_ceiling_reads_above_the_measured_ceiling() -> None:
    console = Console(width=300, record=True)
    render_compare(_with_ceiling({"upscale224": 0.62, "direct48": 1.052}), console)
    text = console.export_text()
    (row,) = [x for x in text.splitlines() if "of the compute ceiling measured in this run" in x]
    assert "62.0%" in row and "above the measured ceiling" in row and "105" not in row
    assert (
        "compute ceiling measured in this run: 240.00 GFLOP/s (ieee fp32, oneDNN), set by "
        "conv3x3 512->512 @6x6 b8 (v/d): the best of 2 matmul sizes up to n=1024 and 1 "
        "convolution with the models' own shapes; 1.9 s"
    ) in text
    assert (
        "theoretical peak (not measured): 166.00 GFLOP/s = 2 cores x 2596 MHz x 16 FMA/cycle"
    ) in text
    assert (
        "the measured ceiling is 145% of it (above: the cores ran faster than the clock read)"
        in text
    )
    assert (
        "vgg16/direct48: above the measured ceiling (the model's layers beat every kernel" in text
    )


def test_an_old_reports_matmul_fraction_is_not_shown_as_a_ceiling_fraction() -> None:
    """Before the ceiling the reference was one square matmul: that fraction is not one of a
    ceiling, so the row is absent rather than mislabelled."""
    from emobench.results import metric_rows

    old = _with_ceiling({"upscale224": 0.8, "direct48": 1.73}, kernel=None)
    assert "matmul_fraction" not in {r.key for r in metric_rows(old)}
    new = _with_ceiling({"upscale224": 0.8, "direct48": 0.9})
    (row,) = [r for r in metric_rows(new) if r.key == "matmul_fraction"]
    assert (row.upscale224, row.direct48) == (0.8, 0.9)

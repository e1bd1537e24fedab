"""Any machine: precision the hardware really has, bounded cost, a busy machine noticed, and
progress off a terminal. Nothing here depends on the real CPU: capabilities and load are faked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from emobench import config as config_mod
from emobench import device as device_mod
from emobench.cli import app
from emobench.config import RunConfig
from emobench.errors import UsageError
from emobench.measure import contention as contention_mod
from emobench.measure.contention import ContentionMonitor
from emobench.measure.env import cpu_isa
from emobench.measure.timing import STOP_BUDGET
from emobench.render.compare import render_compare
from emobench.render.progress import progress_display
from emobench.scenarios import compare as runner_mod
from emobench.scenarios.compare import SHARED_TIMER, run_benchmark
from tests.conftest import TINY, TINY_ARGS

runner = CliRunner()


# -- precision the hardware really has ---------------------------------------------------------


def test_bf16_on_a_cpu_without_native_bf16_is_refused(tmp_path: Path, no_native_bf16: None) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--precision", "bf16", "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --precision bf16")
    assert "no native bf16" in result.stderr and "--allow-emulated" in result.stderr
    assert not out.exists()


def test_allow_emulated_runs_and_says_so(tmp_path: Path, no_native_bf16: None) -> None:
    out = tmp_path / "r.json"
    args = ["compare", *TINY_ARGS, "--precision", "bf16", "--allow-emulated", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "precision bf16 (EMULATED" in result.stdout
    data = json.loads(out.read_text())
    assert data["config"]["allow_emulated"] is True
    assert data["config"]["precision_emulated"] is True
    assert any("EMULATED" in note for note in data["notes"])


def test_native_bf16_is_not_marked_emulated(native_bf16: None) -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", precision="bf16", **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.config["precision_emulated"] is False
    assert not any("EMULATED" in note for note in report.notes)


@pytest.mark.parametrize(
    ("capability", "precision", "emulated"),
    [((7, 5), "bf16", True), ((8, 0), "bf16", False), ((9, 0), "fp16", False)],
)
def test_cuda_precision_needs_the_right_compute_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], precision: str, emulated: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    why = device_mod.emulated_precision(precision, torch.device("cuda", 0))
    assert (why is not None) == emulated
    if emulated:
        assert why == "Tesla T4 is sm_75; native bf16 needs sm_80 or newer"
        config = RunConfig(device="cuda", precision="bf16")
        with pytest.raises(UsageError, match="--allow-emulated"):
            device_mod.check_device_options(config, torch.device("cuda", 0))


@pytest.mark.parametrize(
    ("flags", "tier"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "amx"),
        ({"avx2", "avx512f", "avx512_bf16"}, "avx512-bf16"),
        ({"avx2", "avx512f"}, "avx512"),
        ({"sse4_2", "avx2", "fma"}, "avx2"),
        ({"neon", "asimd"}, "other"),
        (set(), None),
    ],
)
def test_cpu_isa_tier_from_flags(flags: set[str], tier: str | None) -> None:
    assert cpu_isa(flags) == tier


# -- bounded cost ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_or_negative_times_are_refused(tmp_path: Path, value: str) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--min-time", value, "--out", str(out)])
    assert result.exit_code == 2 and "min_time_s must be a finite number" in result.stderr
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--time-budget", value])
    assert result.exit_code == 2 and "time_budget_s must be a finite number" in result.stderr
    assert not out.exists()


def test_time_budget_runs_out_and_the_report_says_where() -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", time_budget_s=1e-6, **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.budget is not None and report.budget.time_budget_s == 1e-6
    assert report.budget.exhausted_at is not None
    assert any(note.startswith("--time-budget 1e-06 s ran out at:") for note in report.notes)
    up = report.results[0]
    assert up.latency is not None and up.latency.stop_reason == STOP_BUDGET
    assert up.latency.stats.n == TINY["min_iters"]  # the minimum, no more


def test_quick_preset_fills_what_was_not_given(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())["config"]
    assert config["quick"] is True
    # TINY_ARGS win over the preset; the rest comes from it
    assert config["max_time_s"] == 0.001 and config["preprocess_images"] == 4
    assert config["target_ci"] == config_mod.QUICK["target_ci"]
    assert "stopping rule (--quick)" in result.stdout


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


def test_threads_default_to_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, restore_threads: None
) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(device_mod, "usable_cores", lambda: 1)
    in_force = device_mod.apply_backend_settings(RunConfig(device="cpu"))
    assert torch.get_num_threads() == 1 and in_force["num_threads"] == 1
    assert in_force["usable_cores"] == 1


# -- a busy machine noticed --------------------------------------------------------------------


class FakeMachine:
    """Wall clock and all-CPU busy seconds, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = 0.0

    def clock(self) -> float:
        return self.now

    def busy_cpu_s(self) -> float:
        return self.busy


def test_contention_monitor_flags_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.setattr(contention_mod, "_own_cpu_s", lambda proc: 0.0)
    monkeypatch.setattr(contention_mod, "_usable_cores", lambda: 2)
    monitor = ContentionMonitor(clock=machine.clock, busy_cpu_s=machine.busy_cpu_s)
    monitor.mark("vgg16/upscale224: latency, batch 1")
    machine.now, machine.busy = 10.0, 10.0  # someone else kept one of two cores busy
    monitor.mark("vgg16/direct48: latency, batch 1")
    machine.now += 10.0  # then the machine was idle
    result = monitor.finish()
    assert result.busy and result.other_cpu_fraction == pytest.approx(0.25)
    assert result.others_cpu_s == pytest.approx(10.0)
    (worst,) = result.busy_steps
    assert worst.step == "vgg16/upscale224: latency, batch 1"
    assert worst.other_cpu_fraction == pytest.approx(0.5)
    assert "other processes used 25% of the 2 usable cores" in result.note
    assert "worst step: vgg16/upscale224: latency, batch 1 (50%)" in result.note


def test_quiet_machine_is_not_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.setattr(contention_mod, "_own_cpu_s", lambda proc: machine.busy)
    monitor = ContentionMonitor(clock=machine.clock, busy_cpu_s=machine.busy_cpu_s)
    machine.now, machine.busy = 5.0, 9.0  # all the busy time is our own
    result = monitor.finish()
    assert not result.busy and result.other_cpu_fraction == 0.0 and result.note == ""


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


# -- progress off a terminal -------------------------------------------------------------------


def test_progress_off_a_terminal_prints_one_plain_line_per_step() -> None:
    stream = io.StringIO()
    with progress_display(Console(file=stream, force_terminal=False, width=200)) as progress:
        progress("vgg16/upscale224: latency, batch 1", 2, 13)
        progress("done", 13, 13)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("] 2/13 vgg16/upscale224: latency, batch 1")
    assert lines[0].startswith("[") and " s] " in lines[0]

"""--time-budget bounds a slow model (issue #26): each call runs under a watchdog that cuts it
once it runs past what the budget has left (or, at the end, a measurement's grace); the cut
measurement is left out or keeps its samples, the report says why, and the run goes on to
write its report. Asserted on the calls made and the reasons recorded, never on durations."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import RunConfig
from emobench.scenarios import steps as steps_mod
from emobench.scenarios.compare import run_benchmark
from emobench.scenarios.steps import Budget, Steps, step_plan
from tests.conftest import TINY, TINY_ARGS
from tests.factories import FakeClock

runner = CliRunner()

# A model whose every real forward sleeps far longer than any bound in these tests; the check
# before the run (meta tensors) does not sleep. CALLS counts the real forwards.
SOURCE = """
import time

from torch import nn

CALLS = []


class Slow(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        if not x.is_meta:
            CALLS.append(x.shape[0])
            time.sleep(0.5)
        return self.fc(x.mean((2, 3)))


def build(pipeline, num_classes=7):
    return Slow(num_classes)
"""
GRACE_S = 0.05  # the least a late measurement gets, shortened for the tests
CUT = "a call was cut after"


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh slow plugin module in the cwd (sys.path restored after); a short grace."""
    name = f"slowplug_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{name}.py").write_text(SOURCE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(steps_mod, "MIN_GRACE_S", GRACE_S)
    return name


def _calls(module: str) -> list[int]:
    return sys.modules[module].CALLS  # type: ignore[no-any-return]


@pytest.mark.real_models
@pytest.mark.parametrize("paired", [True, False])
def test_a_slow_model_is_cut_at_the_time_budget(slow: str, paired: bool) -> None:
    ref = f"{slow}:build"
    config = RunConfig(  # type: ignore[arg-type]
        **{**TINY, "min_iters": 3, "warmup_iters": 1},
        backbones=(ref,),
        device="cpu",
        time_budget_s=0.2,
        paired=paired,
        measurements=("latency", "throughput", "end_to_end", "memory", "flops"),
    )
    report = run_benchmark(config)
    cut = [n for n in report.notes if CUT in n]
    assert cut and all("not measured" in n for n in cut)
    assert any("--time-budget 0.2 s" in n for n in cut)
    # No model call ran to its end but the two counting forwards (one per pipeline: they are
    # never cut): every other call was cut, and each cut ended its measurement.
    assert len(_calls(slow)) == 2 + len(cut)
    for r in report.results:
        assert r.latency is None and r.throughput == [] and r.end_to_end == []
        assert r.memory.peak is None and r.params.total > 0
    assert report.budget is not None and report.budget.exhausted_at is not None


@pytest.mark.real_models
def test_compare_writes_its_report_with_the_reasons_and_exits_0(slow: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [a for a in TINY_ARGS if a not in ("--backbone", "resnet18")]
    args += ["--model", f"{slow}:build", "--quick", "--time-budget", "0.2", "--out", str(out)]
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 0, result.output
    notes = json.loads(out.read_text())["notes"]
    assert any(CUT in n and "not measured" in n for n in notes)
    assert "Traceback" not in result.output


def test_the_budget_bounds_each_call_by_what_is_left_or_the_grace() -> None:
    clock = FakeClock()
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    import torch

    steps = Steps(step_plan(config, torch.device("cpu")), lambda *a: None)
    assert Budget(None, clock).watchdog(steps).limit_s is None  # no budget: no bound
    budget = Budget(60.0, clock)
    grace = max(60.0 / steps.total, steps_mod.MIN_GRACE_S)
    clock.now = 10.0
    first = budget.watchdog(steps)
    assert first.limit_s == 50.0 and first.bound == "the 50 s left of --time-budget 60 s"
    clock.now = 60.0 - grace / 2  # less than the grace left: the grace
    assert budget.watchdog(steps).limit_s == grace and budget.exhausted_at is None
    clock.now = 100.0
    steps.current = "resnet18/direct48: latency, batch 1"
    late = budget.watchdog(steps)
    assert late.limit_s == grace and "at the end of --time-budget 60 s" in late.bound
    assert budget.exhausted_at == "resnet18/direct48: latency, batch 1"

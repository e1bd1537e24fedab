"""CUDA code paths pinned on the CPU with fakes: the device made current, events on its stream,
blocked throughput timing, the NVML pass apart from the timed loop, container PIDs."""

from __future__ import annotations

import os
import types
from contextlib import nullcontext
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from emobench.config import RunConfig
from emobench.measure import nvml as nvml_mod
from emobench.measure import timing as timing_mod
from emobench.scenarios import compare as runner_mod
from tests.conftest import TINY
from tests.paths import ROOT


class FakeEvent:
    recorded: ClassVar[list[object]] = []

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing

    def record(self, stream=None) -> None:
        FakeEvent.recorded.append(stream)

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, other: FakeEvent) -> float:
        return 50.0


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    calls: dict[str, list] = {"synchronize": [], "current_stream": []}
    FakeEvent.recorded = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: calls["synchronize"].append(device)
    )

    def current_stream(device=None):
        calls["current_stream"].append(device)
        return f"stream of {device}"

    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    return calls


def test_events_are_recorded_on_the_chosen_devices_stream(fake_cuda: dict[str, list]) -> None:
    gpu1 = torch.device("cuda", 1)
    ran: list[int] = []
    timer = timing_mod.cuda_event_timer(gpu1)
    assert timer(lambda: ran.append(1)) == 50.0
    assert fake_cuda["current_stream"] == [gpu1]
    assert FakeEvent.recorded == ["stream of cuda:1", "stream of cuda:1"]
    assert fake_cuda["synchronize"] == [gpu1] and ran == [1]


def test_blocked_timer_synchronises_once_per_block(fake_cuda: dict[str, list]) -> None:
    gpu = torch.device("cuda", 0)
    ran: list[int] = []
    timer = timing_mod.cuda_event_timer(gpu, calls=5)
    assert timer(lambda: ran.append(1)) == pytest.approx(10.0)  # 50 ms over 5 calls
    assert len(ran) == 5 and len(fake_cuda["synchronize"]) == 1  # not once per call


def test_throughput_timer_sizes_blocks_to_ten_milliseconds(
    fake_cuda: dict[str, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeEvent, "elapsed_time", lambda self, other: 0.4)  # 0.4 ms a call
    _, name = timing_mod.throughput_timer_for(torch.device("cuda", 0), lambda: None)
    assert name == "cuda_event_blocked x25"
    assert timing_mod.block_calls(0.3) == 34 and timing_mod.block_calls(20.0) == 1


def test_cpu_throughput_timer_blocks_short_calls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.4 ms CPU call is timed 25 calls a sample (ms per call); a 20 ms one call a sample."""
    calls: list[int] = []
    cost = {"ms": 0.4}
    now = {"ns": 0}

    def perf_counter_ns() -> int:
        return now["ns"]

    def fn() -> None:
        calls.append(1)
        now["ns"] += int(cost["ms"] * 1e6)

    monkeypatch.setattr(timing_mod.time, "perf_counter_ns", perf_counter_ns)
    timer, name = timing_mod.throughput_timer_for(torch.device("cpu"), fn)
    # one untimed call, then the fastest of three timed ones
    assert name == "perf_counter_ns_blocked x25" and len(calls) == 4
    calls.clear()
    assert timer(fn) == pytest.approx(0.4) and len(calls) == 25
    cost["ms"] = 20.0
    timer, name = timing_mod.throughput_timer_for(torch.device("cpu"), fn)
    assert name == "perf_counter_ns" and timer is timing_mod.cpu_timer


def test_the_run_makes_its_device_current(monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[object] = []

    class FakeDeviceContext:
        def __init__(self, device) -> None:
            self.device = device

        def __enter__(self) -> None:
            entered.append(self.device)

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(torch.cuda, "device", FakeDeviceContext)
    gpu1 = torch.device("cuda", 1)
    with runner_mod.device_scope(gpu1):
        pass
    assert entered == [gpu1]
    assert isinstance(runner_mod.device_scope(torch.device("cpu")), nullcontext)

    scoped: list[torch.device] = []
    real = runner_mod.device_scope

    def recording(device: torch.device):
        scoped.append(device)
        return real(device)

    monkeypatch.setattr(runner_mod, "device_scope", recording)
    config = RunConfig(backbones=("resnet18",), device="cpu", measurements=("latency",), **TINY)  # type: ignore[arg-type]
    runner_mod.run_benchmark(config)
    assert scoped == [torch.device("cpu")]


def test_nvml_is_sampled_in_its_own_pass() -> None:
    state = {"inside": False, "calls_inside": 0, "now": 0.0}

    class FakeMonitor:
        result = nvml_mod.MonitorResult(3, 0.01, 10, 10.0, 5, 5.0, 12.0)
        energy = nvml_mod.EnergyTrace()

        def __enter__(self):
            state["inside"] = True
            return self

        def __exit__(self, *exc: object) -> None:
            state["inside"] = False

        def read_energy(self, min_gap_s: float = 0.0) -> None:
            return None

    def fn() -> None:
        state["calls_inside"] += int(state["inside"])
        state["now"] += 0.5  # half a second a call on a fake clock

    result = runner_mod.monitor_pass(
        FakeMonitor(), fn, batch_size=8, sync=lambda: None, clock=lambda: state["now"]
    )
    # at least 2 s (no energy reading to wait for: not on to 5 s)
    assert state["calls_inside"] == 4 and not state["inside"]
    assert result is not None and result.calls == 4 and result.images == 32
    # energy per image comes from that pass's own image count
    assert result.energy_joules / result.images == pytest.approx(12.0 / 32)
    assert runner_mod.monitor_pass(runner_mod._NoMonitor(), fn, 8) is None
    assert state["calls_inside"] == 4  # no monitor: no call made


class ProcNVML:
    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=p, usedGpuMemory=1000 + p) for p in self.pids]


def test_process_memory_in_a_container() -> None:
    me = os.getpid()
    assert nvml_mod.process_memory(ProcNVML([me, 7]), None, me) == (1000 + me, nvml_mod.PID_MATCH)
    # a container sees host PIDs: the only process on the device is this one
    assert nvml_mod.process_memory(ProcNVML([424242]), None, me) == (
        1000 + 424242,
        nvml_mod.ONLY_PROCESS,
    )
    used, why = nvml_mod.process_memory(ProcNVML([424242, 424243]), None, me)
    assert used is None and "cannot be told apart" in why


def _dry_run(*args: str) -> str:
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=os.environ | {"DRY_RUN": "1"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gpu_check_dry_run_fits_the_time_a_gpu_is_lent() -> None:
    """The quick profile (the default): every command with its seconds, 360 s in all."""
    import re

    out = _dry_run()
    budgets = [int(s) for s in re.findall(r"^# .*: (\d+) s$", out, re.MULTILINE)]
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert len(budgets) == len(commands) == 6
    assert sum(budgets) <= 360 and f"# total budget: {sum(budgets)} s (limit 360 s)" in out
    assert "gpu_check.py --preflight" in commands[0]
    for line in commands[1:]:  # python -m emobench: no entry-point script, no pip, no make
        assert " -m emobench " in line and "pip" not in line
    compares = [line for line in commands if " compare " in line]
    for backbone, precision in (("vgg16", "fp32"), ("vgg16", "bf16"), ("resnet18", "fp32")):
        assert any(f"--backbone {backbone} --device cuda:0 --precision {precision} " in c
                   for c in compares)  # fmt: skip
    assert sum("--compile default" in c for c in compares) == 1
    for c in compares:  # each run shortens its own loops before its timeout would kill it
        assert "--quick" in c and "--time-budget" in c
    (maxbatch,) = [line for line in commands if " maxbatch " in line]
    assert "--budget 16GiB --max-batch 8192" in maxbatch and "--mode infer" in maxbatch


def test_gpu_check_full_profile_keeps_the_wider_run() -> None:
    out = _dry_run("--full")
    assert "pytest -m gpu" in out and "--device cuda:1" in out
    assert (
        "--precision fp16" in out
        and "maxbatch --backbone vgg16 --device cuda:0 --mode train" in out
    )


def _gpu_check():  # type: ignore[no-untyped-def]
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up while defined
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["gpu_check"]
    return module


def _pipeline(**changes: object) -> dict:
    r: dict = {
        "pipeline": "direct48",
        "error": None,
        "gpu_monitor": {"window_s": 2.1, "energy_updates": 21, "energy_joules": 150.0},
        "memory": {
            "weight_bytes": 100 * 2**20,
            "peak": {"cuda_peak_allocated_bytes": 600 * 2**20, "tensor_peak_bytes": 480 * 2**20},
        },
        "latency": {"stats": {"median": 2.0}},  # 500 calls/s
        "throughput": [{"batch_size": 1, "images_per_s": 600.0, "timing": {"block_calls": 5}}],
        "efficiency": {"matmul_fraction": 0.42, "ceiling_kernel": "conv3x3 512->512"},
    }
    return r | changes


def test_gpu_check_memory_check_has_a_floor_for_small_models() -> None:
    """Review of #21: cuDNN's workspace (tens of MiB) is in the allocator's peak but not among
    the live tensors; 25% of a small model's ~50 MiB peak would fail an honest run."""
    gc = _gpu_check()
    small = {
        "memory": {
            "weight_bytes": 10 * 2**20,
            "peak": {"cuda_peak_allocated_bytes": 110 * 2**20, "tensor_peak_bytes": 50 * 2**20},
        }
    }
    assert gc.check_memory(small)[0]  # 100 MiB vs 50 MiB: within the 64 MiB floor
    big = {
        "memory": {
            "weight_bytes": 0,
            "peak": {"cuda_peak_allocated_bytes": 900 * 2**20, "tensor_peak_bytes": 400 * 2**20},
        }
    }
    assert not gc.check_memory(big)[0]


def test_gpu_check_verdicts_fail_honestly_and_name_missing_fields() -> None:
    gc = _gpu_check()
    run = gc.compare_run("c", "vgg16", 60)
    report = {"environment": {"device": "cuda:0", "gpu_uuid": "GPU-1"}, "results": [_pipeline()]}
    tally = gc.Tally()
    gc.check_compare(run, report, ["GPU-1"], tally)
    assert [v.ok for v in tally.verdicts] == [True] * 6, tally.verdicts
    bad = _pipeline(
        gpu_monitor={"window_s": 0.05, "energy_updates": 0, "energy_joules": None},
        memory={
            "weight_bytes": 0,
            # 900 MiB allocated for 400 MiB of live tensors: over 25% and over the 64 MiB floor
            "peak": {"cuda_peak_allocated_bytes": 900 * 2**20, "tensor_peak_bytes": 400 * 2**20},
        },
        throughput=[{"batch_size": 1, "images_per_s": 100.0, "timing": {}}],  # no block size
        efficiency={"matmul_fraction": 1.3, "ceiling_kernel": "matmul n=4096"},
    )
    errored = _pipeline(pipeline="upscale224", error="RuntimeError: boom")
    other_gpu = {"device": "cuda:0", "gpu_uuid": "GPU-2"}
    tally = gc.Tally()
    gc.check_compare(run, {"environment": other_gpu, "results": [bad, errored]}, ["GPU-1"], tally)
    failed = [v for v in tally.verdicts if not v.ok]
    assert len(failed) == 6 and tally.failed == 6
    assert failed[2].detail == "missing field throughput[batch_size=1].timing.block_calls"
    assert failed[-1].check == "pipeline ran" and failed[-1].detail == "RuntimeError: boom"
    tally = gc.Tally()
    gc.check_compare(run, {"environment": {}, "results": [_pipeline(gpu_monitor=None)]}, [], tally)
    details = [v.detail for v in tally.verdicts if not v.ok]
    assert details == ["missing field environment.device", "missing field gpu_monitor.window_s"]


def test_gpu_check_maxbatch_needs_a_fresh_process_confirmation_with_a_margin() -> None:
    gc = _gpu_check()
    run = gc.maxbatch_run("infer", 80)
    good = {
        "pipeline": "direct48",
        "max_batch": 8192,
        "capped": True,
        "confirmed": True,
        "confirmed_in": "fresh process",
        "confirm_margin_bytes": 3 * 2**30,
        "bytes_per_extra_image": 2**20,
    }
    tally = gc.Tally()
    old = {k: v for k, v in good.items() if k not in ("confirmed_in", "confirm_margin_bytes")}
    gc.check_maxbatch(run, {"maxbatch": [good, old, good | {"confirmed": False}]}, tally)
    assert [v.ok for v in tally.verdicts] == [True, True, True, False, True, False]
    assert "3,072.0 MiB of the budget left (~3,072 images)" in tally.verdicts[1].detail
    assert tally.verdicts[3].detail == "missing field confirmed_in"


def test_gpu_check_kills_a_command_at_its_budget(tmp_path: Path) -> None:
    import sys

    gc = _gpu_check()
    pid_file = tmp_path / "grandchild.pid"
    grandchild = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    # "working" only once the grandchild is up, so a slow start on a loaded machine cannot
    # make the kill come first (the budget is a bound, not something the test times)
    spawn = (
        "import os, subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
        f"[time.sleep(0.05) for _ in range(1200) if not os.path.exists({str(pid_file)!r})]; "
        "print('working', flush=True); time.sleep(60)"
    )
    run = gc.Run("sleeper", ["-c", spawn], 5, kind="tests")
    code, seconds, tail = gc.execute(run, sys.executable, tmp_path / "sleeper.log")
    assert code is None and 5 <= seconds < 60
    if tail != "working":  # the machine was too loaded to start two interpreters in 5 s
        pytest.skip("the command did not get going within its budget on this machine")
    import time

    import psutil

    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # SIGKILL went to the whole group; a loaded machine may take a moment to deliver it
    for _ in range(200):
        if gone():
            break
        time.sleep(0.05)
    assert gone()


def test_gpu_check_exits_1_on_a_pipeline_error_and_ends_with_the_tally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    gc = _gpu_check()
    monkeypatch.chdir(tmp_path)  # main() moves to ROOT: the test's folder is restored after
    monkeypatch.setattr(gc, "ROOT", tmp_path)
    errored = _pipeline(error="RuntimeError: CUDA error: an illegal memory access")
    report = {"environment": {"device": "cuda:0", "gpu_uuid": "GPU-1"}, "results": [errored]}
    preflight = {"count": 1, "uuids": ["GPU-1"], "names": ["H200"], "sm": [90]}

    def execute(run, py, log):  # type: ignore[no-untyped-def]
        if run.kind == "preflight":
            log.write_text(json.dumps(preflight) + "\n")
        elif run.report is not None and run.kind == "compare":
            run.report.write_text(json.dumps(report))
        return (None if run.kind == "maxbatch" else 0), 1.0, "out"

    monkeypatch.setattr(gc, "execute", execute)
    assert gc.main([]) == 1
    out = capsys.readouterr().out.splitlines()
    # 4 compares: exit 0 and the right GPU pass, each pipeline errored; maxbatch timed out
    assert out[-1] == "gpu-check: 8 passed, 5 failed"
    assert any(
        "FAIL  command finished in its budget | maxbatch vgg16 infer" in line for line in out
    )
    assert any("FAIL  pipeline ran" in line and "illegal memory access" in line for line in out)

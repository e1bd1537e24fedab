"""CUDA code paths pinned on the CPU with fakes: the device made current, events on its stream,
blocked throughput timing, the NVML pass apart from the timed loop, container PIDs."""

from __future__ import annotations

import os
import types
from contextlib import nullcontext
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
    assert name == "perf_counter_ns_blocked x25" and len(calls) == 2  # sized on the 2nd call
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
    state = {"inside": False, "calls_inside": 0}

    class FakeMonitor:
        result = nvml_mod.MonitorResult(3, 0.01, 10, 10.0, 5, 5.0, 12.0)

        def __enter__(self):
            state["inside"] = True
            return self

        def __exit__(self, *exc: object) -> None:
            state["inside"] = False

    def fn() -> None:
        state["calls_inside"] += int(state["inside"])

    result = runner_mod.monitor_pass(FakeMonitor(), fn, calls=3, batch_size=8)
    assert state["calls_inside"] == 3 and not state["inside"]
    assert result is not None and result.images == 24
    # energy per image comes from that pass's own image count
    assert result.energy_joules / result.images == pytest.approx(0.5)
    assert runner_mod.monitor_pass(runner_mod._NoMonitor(), fn, 3, 8) is None


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


def test_gpu_check_dry_run_lists_every_command_without_a_gpu() -> None:
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=os.environ | {"DRY_RUN": "1"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "pytest -m gpu" in out
    for backbone in ("vgg16", "resnet18"):
        for precision in ("fp32", "fp16", "bf16"):
            assert f"--backbone {backbone} --device cuda:0 --precision {precision}" in out
        assert f"--backbone {backbone} --device cuda:0 --compile default" in out
    assert "--device cuda:1" in out
    assert "maxbatch --backbone vgg16 --device cuda:0 --mode infer" in out
    assert "maxbatch --backbone vgg16 --device cuda:0 --mode train" in out

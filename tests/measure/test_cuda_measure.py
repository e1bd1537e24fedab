"""CUDA measurements pinned on the CPU with fakes (issue 21): the NVML energy window, each
pipeline's own peak memory from a warm call, block sizing from the fastest of three warm
calls, the per-image path's copy to the device, fp16 warm train steps, TF32 switches."""

from __future__ import annotations

import types
from typing import ClassVar

import numpy as np
import pytest
import torch

from emobench import device as device_mod
from emobench.measure import memory as memory_mod
from emobench.measure import nvml as nvml_mod
from emobench.measure import timing as timing_mod
from emobench.runtimes import torch as runtime_mod
from emobench.scenarios.parts import monitor_pass
from tests.conftest import tiny_model

# -- energy -----------------------------------------------------------------------------------


class Clock:
    """A fake clock that only moves when a call says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class EnergyNVML(types.ModuleType):
    """A GPU drawing `watts`, whose energy counter refreshes every `every_s` of the fake clock
    (NVML's counter on A100/H100 refreshes about every 100 ms)."""

    def __init__(self, clock: Clock, every_s: float = 0.1, watts: float = 300.0) -> None:
        super().__init__("pynvml")
        self.clock, self.every_s, self.watts = clock, every_s, watts

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        refreshes = int(self.clock() / self.every_s + 1e-9)
        return 10_000_000 + round(refreshes * self.every_s * self.watts * 1000)  # mJ

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(used=2**30, total=2**34)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[object]:
        return []


def energy_run(
    every_s: float = 0.1, call_s: float = 0.05, limit_s: float = 5.0, batch: int = 8
) -> tuple[nvml_mod.MonitorResult | None, list[str]]:
    """An energy pass of calls taking `call_s` each on the fake clock; (result, events)."""
    clock = Clock()
    events: list[str] = []
    monitor = nvml_mod.GpuMonitor(EnergyNVML(clock, every_s), "h", interval_s=0.05, clock=clock)

    def call() -> None:
        clock.now = round(clock.now + call_s, 9)
        events.append("call")

    result = monitor_pass(
        monitor, call, batch, limit_s, sync=lambda: events.append("sync"), clock=clock
    )
    return result, events


def test_energy_comes_from_a_window_of_2_s_and_20_counter_updates() -> None:
    """The old pass ran `stats.n` forwards (<= 50, often 6-10: tens of ms), which read the
    100 ms counter as 0 or one whole refresh."""
    result, events = energy_run()
    assert result is not None
    assert result.calls == 40 and result.images == 320  # 2 s of 50 ms calls, batch 8
    assert result.window_s == pytest.approx(2.0)
    assert result.energy_updates == 20
    assert result.energy_update_interval_s == pytest.approx(0.1)
    assert result.energy_joules == pytest.approx(300.0 * 2.0)  # 300 W over the window
    assert result.energy_note is None
    assert result.energy_joules / result.images == pytest.approx(600.0 / 320)
    # synchronised before the window, at least every 0.25 s in it, and before it closes
    assert events[0] == "sync" and events[-1] == "sync"
    assert events.count("sync") >= 2 + 2.0 / 0.25 - 1


def test_energy_pass_goes_on_while_the_counter_updated_too_rarely() -> None:
    """A counter refreshing every 300 ms has 6 refreshes in 2 s: the pass goes on to 10."""
    result, _ = energy_run(every_s=0.3)
    assert result is not None and result.energy_updates == 10
    assert result.window_s == pytest.approx(3.0)
    assert result.energy_joules == pytest.approx(300.0 * 3.0)


def test_energy_is_absent_with_the_reason_when_the_budget_leaves_a_short_window() -> None:
    result, _ = energy_run(limit_s=0.5)
    assert result is not None and result.window_s == pytest.approx(0.5)
    assert result.calls == 10 and result.energy_updates == 5
    assert result.energy_joules is None
    assert result.energy_note is not None and "held 5 updates" in result.energy_note
    assert "at least 10" in result.energy_note


def test_energy_pass_stops_at_5_s_when_the_counter_barely_moves() -> None:
    result, _ = energy_run(every_s=1.0)
    assert result is not None and result.window_s == pytest.approx(5.0)
    assert result.energy_updates == 5 and result.energy_joules is None
    assert result.energy_update_interval_s == pytest.approx(1.0)


def test_a_long_call_still_ends_the_pass_at_its_limit() -> None:
    result, _ = energy_run(call_s=0.7, limit_s=1.0)
    assert result is not None and result.calls == 2  # 0.7 s, then 1.4 s >= the 1 s limit
    assert result.window_s == pytest.approx(1.4)


# -- peak memory --------------------------------------------------------------------------------


class FakeAllocator:
    """torch.cuda's memory counters, driven by the test: `allocated` now, `peak` since reset;
    reserved follows allocated rounded up to 2 MiB segments and is never given back in a call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.allocated = 0
        self.peak = 0
        self.reserved = 0
        self.peak_reserved = 0
        self.resets = 0
        for name, fn in {
            "synchronize": lambda device=None: None,
            "empty_cache": self.empty_cache,
            "reset_peak_memory_stats": self.reset,
            "memory_allocated": lambda device=None: self.allocated,
            "max_memory_allocated": lambda device=None: self.peak,
            "memory_reserved": lambda device=None: self.reserved,
            "max_memory_reserved": lambda device=None: self.peak_reserved,
        }.items():
            monkeypatch.setattr(torch.cuda, name, fn)
        monkeypatch.setattr(nvml_mod, "load_nvml", lambda: None)

    def empty_cache(self) -> None:
        self.reserved = -(-self.allocated // 2**21) * 2**21

    def reset(self, device: object = None) -> None:
        self.resets += 1
        self.peak, self.peak_reserved = self.allocated, self.reserved

    def alloc(self, n: int) -> None:
        self.allocated += n
        self.peak = max(self.peak, self.allocated)
        self.reserved = max(self.reserved, -(-self.allocated // 2**21) * 2**21)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def free(self, n: int) -> None:
        self.allocated -= n


MIB = 2**20
GPU = torch.device("cuda", 0)


def forward_on(cuda: FakeAllocator) -> None:
    """One forward's allocations: 40 MiB at its peak, 0 left after it."""
    cuda.alloc(40 * MIB)  # activations
    cuda.free(30 * MIB)
    cuda.alloc(5 * MIB)
    cuda.free(15 * MIB)


def test_each_pipelines_peak_leaves_out_the_other_resident_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paired mode keeps the other pipeline's model on the device: reset_peak_memory_stats
    resets the peak to what is allocated, so the old peak counted it (600 MiB of upscale224's
    vgg16 in direct48's peak)."""
    own = [torch.zeros(25 * MIB // 4), torch.zeros(MIB // 4)]  # weights 25 MiB, input 1 MiB
    paired = FakeAllocator(monkeypatch)
    paired.alloc(600 * MIB)  # the other pipeline's model, resident
    paired.alloc(26 * MIB)  # this pipeline's weights and input
    peak = memory_mod.peak_memory(lambda: forward_on(paired), GPU, own)
    assert peak.cuda_peak_allocated_bytes == 40 * MIB + 26 * MIB  # its own, as if alone
    assert peak.cuda_allocated_before_bytes == 626 * MIB  # everything resident, recorded
    assert peak.cuda_own_resident_bytes == 26 * MIB
    assert peak.cuda_peak_reserved_bytes == 40 * MIB + 26 * MIB  # 2 MiB segments: 40 grew
    # the same pipeline measured alone on the device gives the same figure
    alone = FakeAllocator(monkeypatch)
    alone.alloc(26 * MIB)
    peak_alone = memory_mod.peak_memory(lambda: forward_on(alone), GPU, own)
    assert peak_alone.cuda_peak_allocated_bytes == peak.cuda_peak_allocated_bytes


def test_peak_memory_comes_from_a_warm_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call at a shape allocates what later ones reuse (cuDNN autotuning workspaces
    under --cudnn-benchmark): one untimed call, then the reset and the measured call."""
    cuda = FakeAllocator(monkeypatch)
    calls: list[int] = []

    def forward() -> None:
        if not calls:
            cuda.alloc(200 * MIB)  # autotuning workspace, first call only
            cuda.free(200 * MIB)
        calls.append(cuda.resets)
        cuda.alloc(10 * MIB)
        cuda.free(10 * MIB)

    peak = memory_mod.peak_memory(forward, GPU, warm_calls=1)
    assert calls == [0, 1]  # the warm call before the reset, the measured one after it
    assert peak.cuda_peak_allocated_bytes == 10 * MIB
    calls.clear()
    memory_mod.peak_memory(forward, GPU)
    assert calls == [cuda.resets]  # already warm (the default): the measured call only


def test_resident_bytes_counts_each_storage_once_rounded_to_allocator_blocks() -> None:
    w = torch.zeros(100)  # 400 bytes -> one 512-byte block
    assert memory_mod.resident_bytes([w, w.view(10, 10), w[:5], torch.zeros(200)]) == 512 + 1024


# -- block sizing -------------------------------------------------------------------------------


class FakeEvent:
    """CUDA events whose elapsed time is the next of `times` (ms)."""

    times: ClassVar[list[float]] = []

    def __init__(self, enable_timing: bool = False) -> None:
        return None

    def record(self, stream: object = None) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, other: FakeEvent) -> float:
        return FakeEvent.times.pop(0)


@pytest.fixture
def fake_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)


def test_block_size_comes_from_the_fastest_of_three_warm_calls(fake_events: None) -> None:
    """The old sizing timed one possibly cold call: a new shape's 50 ms first call gave blocks
    of one call, i.e. per-call synchronisation again."""
    ran: list[int] = []
    FakeEvent.times = [50.0, 0.5, 0.4]
    block = timing_mod.sized_block_timer(GPU, lambda: ran.append(1))
    assert len(ran) == 4  # one untimed, three timed alone
    assert block.calls == 25 and block.name == "cuda_event_blocked x25"
    ran.clear()
    FakeEvent.times = [0.4, 0.4, 0.4]
    assert timing_mod.sized_block_timer(GPU, lambda: ran.append(1), warm=True).calls == 25
    assert len(ran) == 3  # already warm: no untimed call
    ran.clear()
    FakeEvent.times = [250.0]  # a call this long is a block of one whatever the next ones take
    assert timing_mod.sized_block_timer(GPU, lambda: ran.append(1), warm=True).calls == 1
    assert len(ran) == 1


def test_time_loop_records_its_calls_per_sample() -> None:
    settings = timing_mod.LoopSettings(warmup_iters=0, min_iters=2, max_time_s=0.0)
    result = timing_mod.time_loop(lambda: None, settings, calls_per_sample=7)
    assert result.block_calls == 7
    assert timing_mod.time_loop(lambda: None, settings).block_calls == 1


# -- the per-image path on CUDA -----------------------------------------------------------------


def test_the_per_image_path_ends_on_the_device_through_pinned_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the PIL path stopped on the host while the batched path copied to the GPU: its
    figure left out the copy (upscale224's 224x224 float batch)."""
    seen: list[tuple[str, object]] = []
    cpu = torch.device("cpu")
    pipe = runtime_mod.Pipeline("upscale224", tiny_model("vgg16", "upscale224"), cpu)
    host_only = pipe.preprocess_per_image(np.zeros((2, 48, 48), np.uint8))
    assert host_only.shape == (2, 3, 224, 224)
    real_to = torch.Tensor.to

    def pin_memory(self: torch.Tensor) -> torch.Tensor:
        seen.append(("pin", tuple(self.shape)))
        return self

    def to(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if args and isinstance(args[0], torch.device):  # the copy to the device
            seen.append(("to", (str(args[0]), kwargs.get("non_blocking"))))
            return self
        return real_to(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", to)
    pipe.device = torch.device("cuda", 1)
    pipe.preprocess_per_image(np.zeros((2, 48, 48), np.uint8))
    assert seen == [("pin", (2, 3, 224, 224)), ("to", ("cuda:1", True))]


# -- fp16 train warm-up -------------------------------------------------------------------------


class FakeScaler:
    """GradScaler's scale: halved by each of the first `overflows` steps (skipped steps)."""

    def __init__(self, overflows: int) -> None:
        self.scale = 65536.0
        self.overflows = overflows
        self.steps = 0

    def get_scale(self) -> float:
        return self.scale

    def step_taken(self) -> None:
        self.steps += 1
        if self.steps <= self.overflows:
            self.scale /= 2


@pytest.mark.parametrize(("overflows", "warm"), [(0, 3), (2, 3), (5, 6), (20, 8)])
def test_fp16_train_warms_until_gradscaler_stops_skipping(
    monkeypatch: pytest.MonkeyPatch, overflows: int, warm: int
) -> None:
    pipe = runtime_mod.Pipeline("direct48", tiny_model("vgg16", "direct48"), torch.device("cpu"))
    scaler = FakeScaler(overflows)
    pipe._scaler = scaler  # type: ignore[assignment]
    monkeypatch.setattr(
        runtime_mod.Pipeline, "train_step", lambda self, x, y, opt: scaler.step_taken()
    )
    assert pipe.warm_train(torch.zeros(1), torch.zeros(1), None) == warm  # type: ignore[arg-type]


def test_fp32_train_warms_with_one_step() -> None:
    pipe = runtime_mod.Pipeline("direct48", tiny_model("vgg16", "direct48"), torch.device("cpu"))
    pipe.model.train()
    x = pipe.example_input(2, random=True)
    assert pipe.warm_train(x, torch.zeros(2, dtype=torch.long), pipe.new_optimizer()) == 1


# -- TF32 ---------------------------------------------------------------------------------------


@pytest.fixture
def tf32_restored() -> object:
    b = torch.backends
    new = device_mod.tf32_api() == device_mod.FP32_PRECISION
    if new:
        before = (
            b.cuda.matmul.fp32_precision,
            b.cudnn.conv.fp32_precision,
            b.cudnn.rnn.fp32_precision,
        )
    else:
        before = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32)
    yield
    if new:
        (
            b.cuda.matmul.fp32_precision,
            b.cudnn.conv.fp32_precision,
            b.cudnn.rnn.fp32_precision,
        ) = before
    else:
        b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = before


def test_tf32_switches_are_set_and_read_through_the_new_api(tf32_restored: object) -> None:
    b = torch.backends
    if device_mod.tf32_api() != device_mod.FP32_PRECISION:
        pytest.skip("this torch has no fp32_precision API")
    device_mod.set_tf32(True)
    assert (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision) == ("tf32", "tf32")
    assert device_mod.tf32_state() == {"matmul": True, "conv": True}
    device_mod.set_tf32(False)
    assert device_mod.tf32_state() == {"matmul": False, "conv": False}
    assert b.cudnn.rnn.fp32_precision == "ieee"  # cuDNN's RNN flag follows conv's
    b.cuda.matmul.fp32_precision = "none"  # inherits: from the cuda and generic settings
    assert device_mod.tf32_state()["matmul"] is False
    with device_mod.matmul_tf32(True):
        assert device_mod.tf32_state() == {"matmul": True, "conv": False}
    assert b.cuda.matmul.fp32_precision == "none"


def test_tf32_falls_back_to_allow_tf32_on_older_torch(
    monkeypatch: pytest.MonkeyPatch, tf32_restored: object
) -> None:
    monkeypatch.setattr(device_mod, "tf32_api", lambda: device_mod.ALLOW_TF32)
    device_mod.set_tf32(True, conv=False)
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert device_mod.tf32_state()["matmul"] is True
    with device_mod.matmul_tf32(False):
        assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cuda.matmul.allow_tf32 is True
    device_mod.set_tf32(False, conv=False)
    assert device_mod.tf32_state()["matmul"] is False


def test_the_report_says_which_ops_ran_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    in_force = {"tf32_matmul": False, "tf32_cudnn": True, "tf32_api": device_mod.FP32_PRECISION}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    note = device_mod.tf32_note(in_force, "fp32", GPU)
    assert note == (
        "TF32 on fp32 ops: convolutions TF32 (cudnn.conv.fp32_precision: True); "
        "matmuls IEEE fp32 (cuda.matmul.fp32_precision: False)"
    )
    bf16 = device_mod.tf32_note(in_force, "bf16", GPU)
    assert bf16 is not None and "the ops autocast leaves in fp32 (the rest run in bf16)" in bf16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    old_gpu = device_mod.tf32_note(in_force, "fp32", GPU)
    assert old_gpu is not None and old_gpu.startswith("TF32: none: this GPU is sm_75")
    assert device_mod.tf32_note(in_force, "fp32", torch.device("cpu")) is None


def test_settings_in_force_name_the_tf32_api() -> None:
    from emobench.config import RunConfig

    in_force = device_mod.apply_backend_settings(RunConfig(device="cpu"))
    assert in_force["tf32_api"] == device_mod.tf32_api()
    state = device_mod.tf32_state()
    assert (in_force["tf32_matmul"], in_force["tf32_cudnn"]) == (state["matmul"], state["conv"])


def test_energy_pass_does_not_go_on_for_a_counter_it_cannot_read() -> None:
    """Pre-Volta GPUs have no energy counter: 2 s for the memory samples, not 5."""

    class NoEnergy(EnergyNVML):
        def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
            raise RuntimeError("Not Supported")

    clock = Clock()
    monitor = nvml_mod.GpuMonitor(NoEnergy(clock), "h", interval_s=0.05, clock=clock)

    def call() -> None:
        clock.now = round(clock.now + 0.05, 9)

    result = monitor_pass(monitor, call, 4, 5.0, sync=lambda: None, clock=clock)
    assert result is not None and result.window_s == pytest.approx(2.0)
    assert result.energy_joules is None and result.energy_updates == 0
    assert result.energy_note is not None and "could not be read" in result.energy_note
    assert result.device_used_peak_bytes == 2**30


def test_an_oom_from_the_model_carries_its_batch_size() -> None:
    model = tiny_model("vgg16", "direct48")

    def forward(x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    with pytest.raises(torch.OutOfMemoryError) as caught:
        runtime_mod.call_model(forward, torch.zeros(5, 3, 48, 48), model)
    assert caught.value.batch_size == 5  # type: ignore[attr-defined]

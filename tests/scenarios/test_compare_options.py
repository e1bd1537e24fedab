"""The compare scenario's speed options: torch.compile, threads and settings recorded, channels-last
and autocast, train steps, efficiency against the device limits, the NVML monitor pass."""

from __future__ import annotations

import os
import sys
import types

import pytest
import torch
from typer.testing import CliRunner

from emobench.config import RunConfig
from emobench.measure import nvml
from emobench.models import build_model
from emobench.results import BatchTiming, MemoryResult, PreprocessResult, metric_rows
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.compare import HOST_ONLY_NOTE, _efficiency, _gpu_monitor, run_benchmark
from emobench.stats.summary import Stats
from tests.conftest import TINY, tiny_model
from tests.factories import timing

runner = CliRunner()


def test_compile_plumbing_and_separate_compile_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static shapes; every batch size compiled (its first call timed on its own) before any
    loop is timed; no cold start under compile, with the reason."""
    from emobench.scenarios import cold_start

    modes: list[tuple[str | None, object]] = []
    first_calls: list[tuple[str, int]] = []  # (what was running, batch size) per new shape

    def fake_compile(model, mode=None, dynamic=None, **kwargs):
        modes.append((mode, dynamic))
        seen: set[int] = set()

        def compiled(x):
            if x.shape[0] not in seen:
                seen.add(x.shape[0])
                first_calls.append((steps_now[-1] if steps_now else "", x.shape[0]))
            return model(x)

        return compiled

    steps_now: list[str] = []
    monkeypatch.setattr(torch, "compile", fake_compile)
    config = RunConfig(
        backbones=("resnet18",),
        device="cpu",
        compile="reduce-overhead",
        **(TINY | {"batch_sizes": (2, 3)}),
    )  # type: ignore[arg-type]
    report = run_benchmark(config, progress=lambda desc, done, total: steps_now.append(desc))
    assert modes == [("reduce-overhead", False), ("reduce-overhead", False)]
    # each pipeline's shapes (eval mode) were first seen inside its compile step, none later
    assert len(first_calls) == 6 and all("torch.compile" in what for what, _ in first_calls)
    assert sorted(bs for _, bs in first_calls) == [1, 1, 2, 2, 3, 3]
    for r in report.results:
        assert r.compile_s is not None and r.compile_s > 0
        assert set(r.compile_s_per_batch) == {"1", "2", "3"}
        assert r.compile_s == r.compile_s_per_batch["1"]
        assert r.latency is not None and r.error is None
        assert r.latency.cold_start_ms is None and r.cold_start_note == cold_start.COMPILED
    assert report.config["compile"] == "reduce-overhead"
    keys = {row.key for row in metric_rows(report)}
    assert {"compile_s", "compile_b2_s", "compile_b3_s"} <= keys
    assert "cold_start_ms" not in keys


def test_compile_failure_keeps_other_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_compile(model, mode=None, **kwargs):
        if model.pipeline == "upscale224":

            def broken(x):
                raise RuntimeError("InductorError: C++ compile error\\nlong log")

            return broken
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = RunConfig(backbones=("resnet18",), device="cpu", compile="default", **TINY)  # type: ignore[arg-type]
    up, dn = run_benchmark(config).results
    assert up.error is not None and "torch.compile failed: RuntimeError" in up.error
    expected = sum(p.numel() for p in tiny_model("resnet18", "upscale224").parameters())
    assert up.latency is None and up.throughput == [] and up.params.total == expected
    assert dn.error is None and dn.latency is not None and dn.throughput


def test_threads_and_settings_recorded(restore_threads) -> None:
    config = RunConfig(
        backbones=("resnet18",), device="cpu", threads=1, measurements=("latency",), **TINY
    )  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.config["threads"] == 1
    assert report.config["in_force"]["num_threads"] == 1
    assert report.environment["num_threads"] == 1
    for key in ("precision", "channels_last", "compile", "cudnn_benchmark", "tf32", "mode"):
        assert key in report.config


def test_channels_last_and_bf16_autocast() -> None:
    model = tiny_model("resnet18", "direct48")  # bf16 compute stays tiny on any CPU
    pipe = Pipeline("direct48", model, torch.device("cpu"), precision="bf16", channels_last=True)
    x = pipe.preprocess_batched(torch.zeros(2, 48, 48, dtype=torch.uint8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert model.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.infer(x).dtype == torch.bfloat16
    fp32 = Pipeline("direct48", tiny_model("resnet18", "direct48"), torch.device("cpu"))
    assert fp32.infer(x).dtype == torch.float32


def test_train_step_and_preallocated_momentum() -> None:
    pipe = Pipeline("direct48", build_model("vgg16", "direct48"), torch.device("cpu"))
    optimizer = pipe.new_optimizer()
    params = [p for p in pipe.model.parameters() if p.requires_grad]
    assert all(
        torch.equal(optimizer.state[p]["momentum_buffer"], torch.zeros_like(p)) for p in params
    )
    before = pipe.model.head[-1].weight.detach().clone()
    pipe.model.train()
    pipe.train_step(pipe.example_input(2, random=True), torch.tensor([0, 3]), optimizer)
    assert not torch.equal(before, pipe.model.head[-1].weight)
    assert all(p.grad is None for p in params)  # zero_grad(set_to_none=True)


def test_mode_both_measures_train_and_infer_on_cpu(native_bf16: None) -> None:
    config = RunConfig(
        backbones=("resnet18",),
        device="cpu",
        mode="both",
        precision="bf16",
        channels_last=True,
        **TINY,
    )  # type: ignore[arg-type]
    report = run_benchmark(config)
    for r in report.results:
        (t,) = r.train
        assert t.batch_size == 2 and t.images_per_s > 0 and t.timing.stats.n >= 2
        assert t.peak is not None and t.peak.tensor_peak_bytes
        assert r.latency is not None and r.to_device == []
        assert r.efficiency is not None and r.efficiency.matmul_fraction > 0
    assert report.limits is not None and report.limits.matmul_dtype == "bf16"
    assert HOST_ONLY_NOTE in report.notes
    keys = {row.key for row in metric_rows(report)}
    assert {"train_b2_images_per_s", "train_b2_step_ms", "matmul_fraction"} <= keys


def test_efficiency_arithmetic() -> None:
    from emobench.measure.limits import DeviceLimits

    lim = DeviceLimits(1e12, "fp32", 64, 1e10, 1 << 20)
    throughput = [
        BatchTiming(1, 100.0, timing([10.0])),
        BatchTiming(8, 400.0, timing([20.0])),
    ]
    pre = [PreprocessResult("batched_tensor", 4, Stats.from_samples([10.0], "us/image"))]
    memory = MemoryResult(27_648, 0, None, None)
    eff = _efficiency(throughput, 2_000_000_000, pre, memory, lim)  # type: ignore[arg-type]
    assert eff is not None and eff.batch_size == 8
    assert eff.achieved_flops_per_s == 2e9 * 400
    assert eff.matmul_fraction == pytest.approx(0.8)
    per_image = 2304 + 27_648  # uint8 read + float written
    assert eff.preprocess_bytes_per_s["batched_tensor"] == pytest.approx(per_image / 10e-6)
    assert eff.preprocess_copy_fraction["batched_tensor"] == pytest.approx(per_image / 10e-6 / 1e10)
    assert _efficiency([], 1, pre, memory, lim) is None  # type: ignore[arg-type]


def test_efficiency_on_cuda_uses_host_and_bus_bandwidths() -> None:
    """Host work against host memcpy; the batched path against bus copy + device read/write."""
    from emobench.measure.limits import DeviceLimits

    lim = DeviceLimits(
        1e14, "fp32", 8192, 2e12, 1 << 30, host_copy_bytes_per_s=2e10, h2d_bytes_per_s=2.5e10
    )
    throughput = [BatchTiming(8, 400.0, timing([20.0]))]
    per_image_s, batched_s = 100e-6, 2e-6
    pre = [
        PreprocessResult("per_image_pil", 4, Stats.from_samples([per_image_s * 1e6], "us/image")),
        PreprocessResult("batched_tensor", 4, Stats.from_samples([batched_s * 1e6], "us/image")),
    ]
    memory = MemoryResult(602_112, 0, None, None)  # 3x224x224 float32
    eff = _efficiency(throughput, 30_000_000_000, pre, memory, lim)
    assert eff is not None
    moved = 2304 + 602_112
    assert eff.preprocess_copy_fraction["per_image_pil"] == pytest.approx(
        moved / 2e10 / per_image_s
    )
    bound = 2304 / 2.5e10 + moved / 2e12  # uint8 over the bus, then on-device read + write
    assert eff.preprocess_copy_fraction["batched_tensor"] == pytest.approx(bound / batched_s)


class FakeNVML(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("pynvml")
        self.used = iter(range(1000, 10**9, 1000))
        self.energy = iter([5_000, 9_500])

    def nvmlInit(self) -> None: ...

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=next(self.used), total=10**10)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [
            types.SimpleNamespace(pid=os.getpid() + 1, usedGpuMemory=7),
            types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=4096),
        ]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self.last_energy = next(self.energy, getattr(self, "last_energy", None))
        return self.last_energy


def test_gpu_monitor_with_fake_nvml() -> None:
    fake = FakeNVML()
    with nvml.GpuMonitor(fake, "h", interval_s=0.001) as mon:
        sum(range(10000))
    result = mon.result
    assert result is not None and result.samples >= 1
    assert result.process_used_peak_bytes == 4096 and result.process_used_mean_bytes == 4096
    assert result.device_used_peak_bytes == 1000 * result.samples  # strictly increasing fake
    # one update of the energy counter (5000 -> 9500 mJ) is no reading: absent, with the reason
    assert result.energy_updates == 1 and result.energy_joules is None
    assert result.energy_note is not None and "at least 10 are needed" in result.energy_note


def test_gpu_monitor_absent_without_energy_or_processes() -> None:
    class Bare(FakeNVML):
        def nvmlDeviceGetComputeRunningProcesses(self, handle):
            raise RuntimeError("not supported")

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            raise RuntimeError("not supported")

    with nvml.GpuMonitor(Bare(), "h", interval_s=0.001) as mon:
        pass
    assert mon.result is not None
    assert mon.result.energy_joules is None and mon.result.process_used_peak_bytes is None
    assert mon.result.device_used_peak_bytes is not None


def test_no_gpu_monitor_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())
    with _gpu_monitor(torch.device("cpu"), True) as mon:
        pass
    assert mon is None


def test_placement_note_names_the_faster_upscale() -> None:
    import dataclasses

    from emobench.results import TransferResult
    from emobench.scenarios.compare import placement_note
    from tests.factories import pipeline_result

    r = pipeline_result("vgg16", "upscale224", [1.0, 1.0], 10)
    r = dataclasses.replace(
        r,
        to_device=[
            TransferResult(4, "host_upscale_then_copy_f32", 4 * 602_112, True, 0.5, 3.0),
            TransferResult(4, "copy_uint8_then_device_upscale", 4 * 2304, True, 0.02, 0.1),
            TransferResult(1, "host_upscale_then_copy_f32", 602_112, True, 0.1, 0.05),
            TransferResult(1, "copy_uint8_then_device_upscale", 2304, True, 0.01, 0.09),
        ],
    )
    note = placement_note(r)
    assert note is not None and note.startswith("vgg16/upscale224 b4: upscaling on the device")
    assert placement_note(pipeline_result("vgg16", "direct48", [1.0, 1.0], 10)) is None

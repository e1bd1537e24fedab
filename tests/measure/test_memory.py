from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from emobench.measure import nvml
from emobench.measure.env import fingerprint, gpu_fingerprint
from emobench.measure.flops import count_flops, count_parameters
from emobench.measure.memory import cpu_peak_memory, peak_memory, tensor_peak_bytes


def test_count_flops_counts_two_per_multiply_add() -> None:
    layer = nn.Linear(10, 20, bias=False)
    x = torch.randn(3, 10)
    assert count_flops(lambda: layer(x)) == 2 * 3 * 10 * 20


def test_count_parameters_finds_unused_and_frozen() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)  # 20
            self.frozen = nn.Linear(4, 2)  # 10
            self.never = nn.Linear(100, 10)  # 1010, never called

        def forward(self, x):
            return self.frozen(self.used(x))

    net = Net()
    net.frozen.requires_grad_(False)
    counts = count_parameters(net, lambda: net(torch.zeros(1, 4)))
    assert (counts.total, counts.trainable, counts.unused) == (1040, 1030, 1010)


def test_tensor_peak_bytes_tracks_live_tensors() -> None:
    def work():
        a = torch.ones(1024, 256)  # 1 MiB
        b = a * 2  # +1 MiB -> 2 MiB live
        del a
        c = b + 1  # a freed: 2 MiB live again
        return c.sum()  # b and c live, plus the 4-byte sum

    assert tensor_peak_bytes(work) == 2 * 2**20 + 4


def test_cpu_peak_memory_sees_a_large_allocation() -> None:
    def allocate():
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        return float(t[-1])

    peak = cpu_peak_memory(allocate)
    assert peak.cpu_peak_rss_growth_bytes is not None
    assert peak.cpu_peak_rss_growth_bytes >= 48 * 2**20
    assert peak.cuda_peak_allocated_bytes is None and peak.nvml_device_used_bytes is None


def test_peak_memory_on_cpu_reports_cuda_fields_absent() -> None:
    peak = peak_memory(lambda: torch.ones(1000) * 2, torch.device("cpu"))
    assert peak.tensor_peak_bytes == 8000  # the ones and the product
    assert peak.cuda_peak_reserved_bytes is None


class FakeNVML(types.ModuleType):
    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init = fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByUUID(self, uuid: str):
        if uuid != "GPU-1234":
            raise RuntimeError("not found")
        return "handle"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(total=80 * 2**30, used=3 * 2**30, free=77 * 2**30)

    def nvmlSystemGetDriverVersion(self):
        raise RuntimeError("refused")


def test_nvml_with_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())
    mod = nvml.load_nvml()
    assert mod is not None
    handle = nvml.handle_for_uuid(mod, "1234")
    assert handle == "handle"
    assert nvml.handle_for_uuid(mod, "GPU-9999") is None
    assert nvml.used_bytes(mod, handle) == 3 * 2**30
    info = nvml.device_info(mod, handle)
    assert info == {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_memory_total_bytes": 80 * 2**30,
        "driver": None,  # refused by NVML: absent, not invented
    }


def test_nvml_absent_when_library_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(fail_init=True))
    assert nvml.load_nvml() is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert nvml.load_nvml() is None


def test_fingerprint_on_cpu() -> None:
    env = fingerprint(torch.device("cpu"))
    assert env["torch"] == torch.__version__
    assert env["num_threads"] == torch.get_num_threads()
    assert env["device"] == "cpu"
    assert env["cpu_model"]
    assert gpu_fingerprint(torch.device("cpu"))["gpu_name"] is None


def test_views_and_in_place_writes_on_existing_tensors_allocate_nothing() -> None:
    big = torch.zeros(2**20)  # 4 MiB that existed before the measured call
    assert tensor_peak_bytes(lambda: big.view(-1)) == 0
    assert tensor_peak_bytes(lambda: big.relu_()) == 0
    assert tensor_peak_bytes(lambda: big.t() if big.dim() == 2 else big[::2]) == 0
    # a real new tensor is still counted
    assert tensor_peak_bytes(lambda: big * 2) == 4 * 2**20


def test_sgd_step_peak_is_the_gradient_not_three_times_the_weights() -> None:
    """One SGD-with-momentum step on a Conv2d: weights and momentum exist already; the step
    allocates the gradient (= weight bytes), a 4 KiB activation and its gradient, a scalar."""
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, padding=1)
    opt = torch.optim.SGD(conv.parameters(), lr=0.01, momentum=0.9)
    for p in conv.parameters():
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    x = torch.randn(1, 64, 4, 4)

    def step() -> None:
        conv(x).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    weight_bytes = sum(p.numel() * p.element_size() for p in conv.parameters())  # 147,712
    held = [*conv.parameters(), x, *[t for st in opt.state.values() for t in st.values()]]
    peak = tensor_peak_bytes(step, held)
    # by hand: gradients 147,712 B; output 4,096 B and the sum's 4 B are freed before the
    # weight gradient is complete; the largest set alive at once is the gradient plus a
    # scalar's 8 bytes at most (the old count was 3.0x the weights: 443,136 B)
    assert weight_bytes <= peak <= weight_bytes + 4096 + 8
    assert peak / weight_bytes == pytest.approx(1.0, abs=0.03)


def test_unused_parameters_are_counted_per_parameter() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)  # weight used directly, bias never: partly used module
            self.b = nn.Linear(4, 4)  # never called, but its weight is used through F.linear
            self.dead = nn.Linear(4, 100)  # a dead branch: 500 parameters
            self.tied = nn.Linear(4, 4, bias=False)
            self.tied.weight = self.a.weight  # tied: one parameter, counted once

        def forward(self, x):
            h = torch.nn.functional.linear(x, self.a.weight)  # a.bias is never read
            return torch.nn.functional.linear(h, self.b.weight)  # b's module never runs

    net = Net()
    counts = count_parameters(net, lambda: net(torch.zeros(1, 4)))
    # a.weight 16 (tied with tied.weight), a.bias 4, b.weight 16, b.bias 4, dead 400 + 100
    assert counts.total == 16 + 4 + 16 + 4 + 500
    assert counts.unused == 4 + 4 + 500  # a.bias, b.bias and the dead branch
    assert counts.unused <= counts.total

"""Device limits: the matmul rate and copy bandwidth sized and timed within their cap."""

from __future__ import annotations

import pytest
import torch

from emobench.measure import limits as limits_mod
from emobench.measure.limits import measure_limits
from tests.factories import FakeClock


def test_reference_matmul_uses_the_models_math_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA in fp32, cuDNN convolutions run TF32 by default; IEEE matmul would read 3-8x
    too slow a reference and efficiency far over 100%."""
    from emobench.measure.limits import _matmul_tf32, matmul_math

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert matmul_math(gpu, "fp32") == "tf32"
    assert matmul_math(torch.device("cpu"), "fp32") == "ieee fp32"
    assert matmul_math(gpu, "bf16") == "bf16"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert matmul_math(gpu, "fp32") == "ieee fp32"
    before = torch.backends.cuda.matmul.allow_tf32
    with _matmul_tf32(not before):
        assert torch.backends.cuda.matmul.allow_tf32 == (not before)
    assert torch.backends.cuda.matmul.allow_tf32 == before


class _FakeCall:
    def __init__(self, cost_ms: float) -> None:
        self.cost_ms = cost_ms

    def __call__(self) -> None:
        return None


def _fake_device(monkeypatch: pytest.MonkeyPatch, matmul_ms, copy_ms) -> list[float]:
    """A device whose calls cost what the functions say; returns the list of timed costs."""
    timed: list[float] = []
    monkeypatch.setattr(limits_mod, "matmul_call", lambda d, t, n: _FakeCall(matmul_ms(n)))
    monkeypatch.setattr(limits_mod, "copy_call", lambda d, size: _FakeCall(copy_ms(size)))
    return timed


def test_limits_grow_the_problem_until_a_call_takes_a_few_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_device(monkeypatch, lambda n: 5.0 * (n / 256) ** 3, lambda size: 5.0 * size / (4 << 20))
    clock = FakeClock()

    def timer(fn) -> float:
        clock.now += fn.cost_ms / 1000
        return fn.cost_ms

    lim = measure_limits(torch.device("cpu"), "fp32", timer, time_s=2.0, clock=clock)
    assert lim.matmul_n == 256 and lim.copy_bytes == 4 << 20  # the first size reaching 5 ms
    assert lim.matmul_flops_per_s == pytest.approx(2 * 256**3 / 0.005)
    assert lim.copy_bytes_per_s == pytest.approx(2 * (4 << 20) / 0.005)


def test_limits_stay_within_their_time_cap_on_a_very_slow_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # emulated bf16: even the smallest matmul takes 400 ms a call
    _fake_device(monkeypatch, lambda n: 400.0 * (n / 64) ** 3, lambda size: 400.0)
    clock = FakeClock()
    calls: list[float] = []

    def timer(fn) -> float:
        calls.append(fn.cost_ms)
        clock.now += fn.cost_ms / 1000
        return fn.cost_ms

    lim = measure_limits(torch.device("cpu"), "bf16", timer, time_s=2.0, clock=clock)
    assert lim.matmul_n == 64 and lim.matmul_dtype == "bf16"
    # per limit: first touch, one sizing call past its deadline, two samples in what is left
    assert len(calls) == 8
    assert lim.elapsed_s is not None and lim.elapsed_s <= 2.0 + 4 * 0.4

"""Device limits: the compute ceiling (matmul sweep, the models' own convolutions), the
theoretical peak and copy bandwidth, sized and timed within their cap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emobench.measure import limits as limits_mod
from emobench.measure.flops import Layer, layer_shapes
from emobench.measure.limits import (
    CeilingPlan,
    ConvShape,
    DeviceLimits,
    ceiling_plan,
    cpu_peak,
    measure_limits,
)
from tests.factories import FakeClock


@pytest.fixture
def tf32_restored():  # type: ignore[no-untyped-def]
    """The process-wide TF32 switches put back as they were (through the API torch wants)."""
    from emobench.device import set_tf32, tf32_state

    before = tf32_state()
    yield
    set_tf32(before["matmul"], matmul=True, conv=False)
    set_tf32(before["conv"], matmul=False, conv=True)


def test_reference_matmul_uses_the_models_math_mode(tf32_restored: None) -> None:
    """On CUDA in fp32, cuDNN convolutions run TF32 by default; IEEE matmul would read 3-8x
    too slow a reference and efficiency far over 100%. Read and set through the fp32_precision
    API where torch has it: reading allow_tf32 after it was used raises on torch >= 2.9."""
    from emobench.device import set_tf32, tf32_state
    from emobench.measure.limits import _matmul_tf32, matmul_math

    gpu = torch.device("cuda", 0)
    set_tf32(True, matmul=False, conv=True)
    assert matmul_math(gpu, "fp32") == "tf32"
    assert matmul_math(torch.device("cpu"), "fp32") == "ieee fp32"
    assert matmul_math(gpu, "bf16") == "bf16"
    set_tf32(False, matmul=False, conv=True)
    assert matmul_math(gpu, "fp32") == "ieee fp32"
    before = tf32_state()["matmul"]
    with _matmul_tf32(not before):
        assert tf32_state()["matmul"] == (not before)
    assert tf32_state()["matmul"] == before


class _FakeCall:
    def __init__(self, cost_ms: float) -> None:
        self.cost_ms = cost_ms

    def __call__(self) -> None:
        return None


def _cost(fn) -> float:
    """What a fake call costs; a Repeated block costs its calls."""
    if isinstance(fn, limits_mod.Repeated):
        return fn.calls * _cost(fn.fn)
    return fn.cost_ms


def _fake_device(
    monkeypatch: pytest.MonkeyPatch, matmul_ms, copy_ms, conv_ms=None
) -> tuple[FakeClock, list[float]]:
    """A device whose calls cost what the functions say; returns its clock and a timer's log."""
    monkeypatch.setattr(limits_mod, "matmul_call", lambda d, t, n: _FakeCall(matmul_ms(n)))
    monkeypatch.setattr(limits_mod, "copy_call", lambda d, size: _FakeCall(copy_ms(size)))
    if conv_ms is not None:
        monkeypatch.setattr(
            limits_mod, "conv_call", lambda d, t, shape, b, cl: _FakeCall(conv_ms(shape, b))
        )
    monkeypatch.setattr(limits_mod, "theoretical_peak", lambda d, p: (None, "fake device"))
    return FakeClock(), []


def _timer(clock: FakeClock, calls: list[float]):
    def timer(fn) -> float:
        cost = _cost(fn)
        calls.append(cost)
        clock.now += cost / 1000
        return cost

    return timer


def test_matmul_sweep_times_every_size_up_to_the_largest_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ceiling is the best rate over sizes, not the first size that takes 5 ms: here n=512
    is fastest, and the sweep stops at the largest layer's square size (1280), not 2048."""
    rate = {64: 1e9, 128: 5e9, 256: 2e10, 512: 8e10, 1024: 6e10, 1280: 5e10}
    clock, calls = _fake_device(
        monkeypatch, lambda n: 2 * n**3 / rate[n] * 1000, lambda size: 5.0 * size / (4 << 20)
    )
    plan = CeilingPlan(matmul_n_cap=1280)
    lim = measure_limits(torch.device("cpu"), "fp32", _timer(clock, calls), 2.0, clock, plan=plan)
    assert [k.kernel for k in lim.kernels] == [f"matmul n={n}" for n in rate]
    assert lim.matmul_n == 512 and lim.matmul_flops_per_s == pytest.approx(8e10)
    assert lim.ceiling_flops_per_s == pytest.approx(8e10)
    assert lim.ceiling_kernel == "matmul n=512" and lim.conv_backend is None
    assert lim.copy_bytes == 4 << 20  # the first copy size reaching 5 ms
    assert lim.copy_bytes_per_s == pytest.approx(2 * (4 << 20) / 0.005)
    assert lim.elapsed_s is not None and lim.elapsed_s <= 2.0 + max(calls) / 1000  # one call


def test_ceiling_is_the_best_kernel_and_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A convolution with a model's shapes beats the matmul (oneDNN's direct convolution does
    on AVX-512 CPUs): the ceiling is its rate and the report says which kernel and model."""
    wide = ConvShape(512, 512, 6, 6, ("vgg16/direct48",))
    big = ConvShape(64, 64, 224, 224, ("vgg16/upscale224",))
    conv_rate = {wide: 2e11, big: 1e11}
    clock, calls = _fake_device(
        monkeypatch,
        lambda n: 2 * n**3 / 1e11 * 1000,
        lambda size: 5.0,
        lambda shape, b: shape.flops(b) / conv_rate[shape] * 1000,
    )
    plan = CeilingPlan(convs=(wide, big), matmul_n_cap=256, max_batch=16)
    lim = measure_limits(torch.device("cpu"), "fp32", _timer(clock, calls), 2.0, clock, plan=plan)
    assert lim.matmul_flops_per_s == pytest.approx(1e11)
    assert lim.ceiling_flops_per_s == pytest.approx(2e11)
    # 512->512 @6x6 is 0.85 ms at batch 1 here: doubled until a call takes 5 ms (batch 8)
    assert lim.ceiling_kernel == "conv3x3 512->512 @6x6 b8 (vgg16/direct48)"
    convs = {k.kernel: k for k in lim.kernels if k.kernel.startswith("conv")}
    assert set(convs) == {"conv3x3 512->512 @6x6 b8", "conv3x3 64->64 @224x224 b1"}
    assert convs["conv3x3 64->64 @224x224 b1"].owners == ["vgg16/upscale224"]
    assert lim.conv_backend in ("oneDNN", "native") and lim.ceiling_note is None


def test_conv_batch_stops_at_the_runs_largest_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short convolution is not grown past the run's batch; it is timed in back-to-back
    blocks instead, and its rate read per call."""
    small = ConvShape(64, 64, 12, 12, ("a/direct48",))
    clock, calls = _fake_device(
        monkeypatch, lambda n: 2 * n**3 / 1e11 * 1000, lambda size: 5.0, lambda s, b: 0.1 * b
    )
    plan = CeilingPlan(convs=(small,), matmul_n_cap=64, max_batch=2)
    lim = measure_limits(torch.device("cpu"), "fp32", _timer(clock, calls), 2.0, clock, plan=plan)
    (conv,) = [k for k in lim.kernels if k.kernel.startswith("conv")]
    assert conv.kernel == "conv3x3 64->64 @12x12 b2"
    assert conv.flops_per_s == pytest.approx(small.flops(2) / 0.0002)
    assert max(calls) == pytest.approx(0.2 * 25)  # Repeated: 25 calls of 0.2 ms fill 5 ms


def test_convolutions_that_do_not_fit_the_time_are_left_out_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--limits-time bounds the ceiling: a convolution whose first two calls cannot fit what
    is left is not started, and the ceiling note says which."""
    huge = ConvShape(64, 64, 224, 224, ("vgg16/upscale224",))
    clock, calls = _fake_device(
        monkeypatch, lambda n: 2 * n**3 / 1e9 * 1000, lambda size: 5.0, lambda s, b: 1e9
    )
    plan = CeilingPlan(convs=(huge,), matmul_n_cap=64, notes=("x/direct48: unknown",))
    lim = measure_limits(torch.device("cpu"), "fp32", _timer(clock, calls), 0.5, clock, plan=plan)
    assert 1e9 not in calls  # never called
    assert lim.ceiling_kernel == "matmul n=64"
    assert lim.ceiling_note == (
        "x/direct48: unknown; not timed within --limits-time 0.5 s: conv3x3 64->64 @224x224 b1"
    )


def test_a_convolution_the_backend_lacks_is_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    def conv_ms(shape: ConvShape, b: int) -> float:
        raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'\nmore")

    clock, calls = _fake_device(monkeypatch, lambda n: 2 * n**3 / 1e9 * 1000, lambda s: 5.0)
    monkeypatch.setattr(limits_mod, "conv_call", lambda *a: conv_ms(*a[2:4]))
    plan = CeilingPlan(convs=(ConvShape(16, 16, 8, 8),), matmul_n_cap=64)
    lim = measure_limits(torch.device("cpu"), "fp16", _timer(clock, calls), 2.0, clock, plan=plan)
    assert lim.ceiling_kernel == "matmul n=64"
    assert lim.ceiling_note == (
        'failed: conv3x3 16->16 @8x8 b1 (RuntimeError: "slow_conv2d_cpu" not implemented '
        "for 'Half')"
    )


def test_limits_stay_within_their_time_cap_on_a_very_slow_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # emulated bf16: even the smallest matmul takes 400 ms a call
    clock, calls = _fake_device(monkeypatch, lambda n: 400.0 * (n / 64) ** 3, lambda size: 400.0)
    lim = measure_limits(torch.device("cpu"), "bf16", _timer(clock, calls), 2.0, clock)
    assert lim.matmul_n == 64 and lim.matmul_dtype == "bf16"
    assert [k.kernel for k in lim.kernels] == ["matmul n=64"]  # 128 would not fit
    # matmul: first touch, two samples, the second past its deadline; copy: first touch, one
    # sizing call past its half, one sample in what is left
    assert len(calls) == 6
    assert lim.elapsed_s is not None and lim.elapsed_s <= 2.0 + 0.4  # one call over at most


def test_the_ceiling_costs_no_more_than_the_limits_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eleven families' worth of convolutions at default settings still end within the
    --limits-time, give or take one call."""
    shapes = tuple(
        ConvShape(64 * (i % 4 + 1), 256, 56 // (i % 3 + 1), 56, (f"m{i}/p",)) for i in range(22)
    )
    clock, calls = _fake_device(
        monkeypatch,
        lambda n: 2 * n**3 / 1e11 * 1000,
        lambda size: 5.0 * size / (4 << 20),
        lambda shape, b: shape.flops(b) / 1e11 * 1000,
    )
    plan = CeilingPlan(convs=shapes, matmul_n_cap=1280, max_batch=16)
    lim = measure_limits(torch.device("cpu"), "fp32", _timer(clock, calls), 2.0, clock, plan=plan)
    assert lim.elapsed_s is not None and lim.elapsed_s <= 2.0 + max(calls) / 1000
    assert lim.ceiling_flops_per_s == pytest.approx(1e11)


# -- the plan: the models' own shapes -----------------------------------------------------------


def test_layer_shapes_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.Conv2d(32, 32, 3, padding=1, groups=32),  # depthwise
            nn.Conv2d(32, 64, 1),
            nn.Flatten(),
            nn.Linear(64 * 24 * 24, 10),
        )
        x = torch.zeros(1, 3, 48, 48)
    layers = layer_shapes(model, lambda: model(x))
    assert layers == [
        Layer("conv", 3, 32, 1, 24, 24, 2 * 32 * 24 * 24 * 3 * 9),
        Layer("conv", 32, 32, 32, 24, 24, 2 * 32 * 24 * 24 * 9),
        Layer("conv", 32, 64, 1, 24, 24, 2 * 64 * 24 * 24 * 32),
        Layer("linear", 36864, 10, 1, 1, 1, 2 * 36864 * 10),
    ]
    assert not model[0]._forward_hooks  # the hooks are gone


def test_ceiling_plan_takes_each_pipelines_widest_and_largest_convolution() -> None:
    stem = Layer("conv", 3, 64, 1, 112, 112, 10**9)  # most FLOPs, but 3 input channels
    big = Layer("conv", 64, 64, 1, 56, 56, 5 * 10**8)
    wide = Layer("conv", 512, 512, 1, 7, 7, 2 * 10**8)
    depthwise = Layer("conv", 960, 960, 960, 7, 7, 10**6)
    fc = Layer("linear", 25088, 4096, 1, 1, 1, 2 * 25088 * 4096)
    plan = ceiling_plan(
        {"r/upscale224": [stem, big, wide, depthwise, fc], "r/direct48": [big, wide]},
        max_batch=16,
        channels_last=True,
        notes=["p/direct48: unknown"],
    )
    # each pipeline's widest and most FLOPs, each shape once; the stem and the depthwise
    # convolution are left out; the most GEMM-like first (at a call of about 1 GFLOP)
    assert plan.convs == (
        ConvShape(512, 512, 7, 7, ("r/upscale224", "r/direct48")),
        ConvShape(64, 64, 56, 56, ("r/upscale224", "r/direct48")),
    )
    assert [c.gemm_side(16) for c in plan.convs] == [392, 64]  # 512 at 7x7x8 (0.9 GFLOP)
    reordered = ceiling_plan({"a/direct48": [big], "b/direct48": [wide]}, max_batch=16)
    assert [c.owners for c in reordered.convs] == [("b/direct48",), ("a/direct48",)]
    assert plan.matmul_n_cap == 832  # the stem's 1 GFLOP as a square matmul: 794 -> 832
    assert (plan.max_batch, plan.channels_last, plan.notes) == (16, True, ("p/direct48: unknown",))
    assert ceiling_plan({}).convs == () and ceiling_plan({}).matmul_n_cap is None


def test_the_runs_plan_reads_the_registry_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """vgg16 on the meta device: its widest and most expensive convolutions per pipeline; a
    model that fails on the meta device is noted, not fatal."""
    from emobench.models import build_model
    from emobench.scenarios.parts import ceiling_plan_for

    def build(backbone: str, pipeline: str, num_classes: int = 7):
        if backbone == "broken":
            raise ValueError("no meta")
        return build_model(backbone, pipeline, num_classes=num_classes)

    plan = ceiling_plan_for(build, ("vgg16", "broken"), ("upscale224", "direct48"), 7, 16, False)
    assert [(c.cin, c.cout, c.height, c.owners) for c in plan.convs] == [
        (512, 512, 28, ("vgg16/upscale224",)),  # GEMM sides 784 (b1) x 512 x 4608
        (512, 512, 6, ("vgg16/direct48",)),  # 288 (b8) x 512 x 4608
        (64, 64, 224, ("vgg16/upscale224",)),
        (64, 64, 48, ("vgg16/direct48",)),
    ]
    assert plan.matmul_n_cap == 1280  # a 3.7 GFLOP layer
    assert plan.notes == (
        "broken/upscale224: layer shapes unknown on the meta device (ValueError('no meta'))",
        "broken/direct48: layer shapes unknown on the meta device (ValueError('no meta'))",
    )


def test_a_real_convolution_runs_in_the_runs_dtype_and_format() -> None:
    shape = ConvShape(8, 16, 6, 5)
    out = limits_mod.conv_call(torch.device("cpu"), torch.bfloat16, shape, 2, True)()
    assert out.shape == (2, 16, 6, 5) and out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert shape.flops(2) == 2 * 9 * 8 * 16 * 6 * 5 * 2


# -- efficiency against the ceiling ------------------------------------------------------------


def _limits(**kw) -> DeviceLimits:
    return DeviceLimits(1e12, "fp32", 64, 1e10, 1 << 20, **kw)


def test_efficiency_divides_by_the_ceiling_and_flags_a_model_above_it() -> None:
    from emobench.results import BatchTiming, MemoryResult
    from emobench.results.metrics import CEILING_KEY, metric_defs
    from emobench.scenarios.parts import _efficiency
    from tests.factories import timing

    memory = MemoryResult(27_648, 0, None, None)
    lim = _limits(ceiling_flops_per_s=2e12, ceiling_kernel="conv3x3 512->512 @6x6 b4 (v/d)")
    below = _efficiency([BatchTiming(8, 400.0, timing([20.0]))], 2_000_000_000, [], memory, lim)
    assert below is not None and below.matmul_fraction == pytest.approx(0.4)
    assert below.ceiling_kernel == "conv3x3 512->512 @6x6 b4 (v/d)" and not below.above_ceiling
    above = _efficiency([BatchTiming(8, 1200.0, timing([20.0]))], 2_000_000_000, [], memory, lim)
    assert above is not None and above.above_ceiling
    assert above.matmul_fraction == pytest.approx(1.2)  # the raw number is kept
    old = _efficiency([BatchTiming(8, 400.0, timing([20.0]))], 2_000_000_000, [], memory, _limits())
    assert old is not None and old.ceiling_kernel == "matmul n=64"
    (metric,) = [d for d in metric_defs([8]) if d.key == CEILING_KEY]
    assert metric.label == "of the compute ceiling measured in this run"


# -- the theoretical peak ------------------------------------------------------------------------


def _cpuinfo(n: int, flags: str, mhz: str | None = "2596.138", vendor: str = "GenuineIntel",
             family: int = 6, cores_per_cpu: bool = True) -> str:  # fmt: skip
    blocks = []
    for i in range(n):
        lines = [f"processor\t: {i}", f"vendor_id\t: {vendor}", f"cpu family\t: {family}"]
        if mhz is not None:
            lines.append(f"cpu MHz\t\t: {mhz}")
        if cores_per_cpu:
            lines += ["physical id\t: 0", f"core id\t\t: {i // 2}"]  # two threads per core
        lines.append(f"flags\t\t: fpu sse2 {flags}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_theoretical_peak_from_a_fake_cpuinfo() -> None:
    intel = _cpuinfo(4, "avx2 fma avx512f")
    peak, how = cpu_peak(intel, {0, 1, 2, 3}, threads=4, precision="fp32")
    assert peak == pytest.approx(2 * 2596.138e6 * 32 * 2)  # 2 physical cores, SMT not counted
    assert how.startswith("2 cores x 2596 MHz x 32 FMA/cycle (AVX-512, two 512-bit FMA units")
    assert "clock from /proc/cpuinfo 'cpu MHz' (turbo can run above it)" in how
    # the affinity and the run's threads bound the cores; psutil's maximum clock wins
    peak, how = cpu_peak(intel, {0}, threads=4, precision="fp32", max_mhz=3500.0)
    assert peak == pytest.approx(1 * 3500e6 * 32 * 2) and "psutil" in how
    zen4 = _cpuinfo(2, "avx2 fma avx512f avx512_bf16", vendor="AuthenticAMD", family=25,
                    cores_per_cpu=False)  # fmt: skip
    peak, how = cpu_peak(zen4, None, threads=2, precision="fp32")
    assert peak == pytest.approx(2 * 2596.138e6 * 16 * 2) and "Zen 4" in how
    peak, how = cpu_peak(zen4, None, threads=2, precision="bf16")
    assert peak == pytest.approx(2 * 2596.138e6 * 32 * 2) and "avx512_bf16" in how
    avx2 = _cpuinfo(2, "avx2 fma", cores_per_cpu=False)
    assert cpu_peak(avx2, None, 8, "fp32")[0] == pytest.approx(2 * 2596.138e6 * 16 * 2)


@pytest.mark.parametrize(
    ("text", "precision", "why"),
    [
        (_cpuinfo(2, "avx"), "fp32", "no AVX2/AVX-512 FMA"),
        (_cpuinfo(2, "avx2 fma", mhz=None), "fp32", "reports no clock"),
        (_cpuinfo(2, "avx2 fma"), "bf16", "no native bf16"),
        (_cpuinfo(2, "avx512f avx512_bf16 amx_bf16"), "bf16", "AMX"),
        (_cpuinfo(2, "avx512f"), "fp16", "fp16"),
        ("", "fp32", "lists no processors"),
    ],
)
def test_no_theoretical_peak_says_why(text: str, precision: str, why: str) -> None:
    peak, how = cpu_peak(text, None, 2, precision)
    assert peak is None and why in how and how.startswith("no theoretical peak")


def test_no_theoretical_peak_on_cuda() -> None:
    peak, how = limits_mod.theoretical_peak(torch.device("cuda", 0), "fp32")
    assert peak is None and "cuda" in how and "tensor-core" in how


def test_this_machines_peak_is_read_or_explained() -> None:
    peak, how = limits_mod.theoretical_peak(torch.device("cpu"), "fp32")
    assert (peak is None) == how.startswith("no theoretical peak")
    assert peak is None or peak > 0


def test_the_cuda_path_with_a_fake_device(
    monkeypatch: pytest.MonkeyPatch, tf32_restored: None
) -> None:
    """On CUDA (faked: calls cost what the functions say): the ceiling's convolutions get a
    third of --limits-time, the host and pinned host-to-device copies are measured too, fp32
    matmuls run in TF32 as cuDNN's convolutions do, cuDNN is named, and no theoretical peak is
    invented for a GPU."""
    from emobench.device import set_tf32, tf32_state

    seen_tf32: list[bool] = []

    def matmul(d, t, n):
        seen_tf32.append(tf32_state()["matmul"])
        return _FakeCall(2 * n**3 / 1e14 * 1000)

    def copy(d, size, src=None):
        return _FakeCall(size / (1e10 if src is not None else 1e12) * 1000)

    clock, calls = FakeClock(), []
    monkeypatch.setattr(limits_mod, "matmul_call", matmul)
    monkeypatch.setattr(limits_mod, "copy_call", copy)
    monkeypatch.setattr(
        limits_mod, "conv_call", lambda d, t, s, b, cl: _FakeCall(s.flops(b) / 2e14 * 1000)
    )
    set_tf32(True, matmul=False, conv=True)
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "enabled", True)
    plan = CeilingPlan(convs=(ConvShape(512, 512, 28, 28, ("vgg16/upscale224",)),), max_batch=64)
    gpu = torch.device("cuda", 0)
    lim = measure_limits(gpu, "fp32", _timer(clock, calls), 3.0, clock, _timer(clock, calls), plan)
    assert seen_tf32 and all(seen_tf32) and lim.matmul_math == "tf32"
    assert lim.ceiling_flops_per_s == pytest.approx(2e14)
    # 0.02 ms at batch 1 on this device: doubled to the run's largest batch, then in blocks
    assert lim.ceiling_kernel == "conv3x3 512->512 @28x28 b64 (vgg16/upscale224)"
    assert lim.conv_backend == "cuDNN"
    assert lim.host_copy_bytes_per_s is not None and lim.h2d_bytes_per_s is not None
    assert lim.peak_flops_per_s is None and lim.peak_how is not None and "cuda" in lim.peak_how
    assert lim.elapsed_s is not None and lim.elapsed_s <= 3.0 + max(calls) / 1000
    monkeypatch.setattr(torch.backends.cudnn, "enabled", False)
    assert limits_mod.conv_backend(gpu) == "native"


def test_a_convolution_starts_at_the_batch_its_call_should_need() -> None:
    """No time spent on batches far below 5 ms a call: 512->512 @6x6 is 170 MFLOP a call at
    batch 1, 1 GFLOP fills 5 ms at 200 GFLOP/s: batch 8 (a power of two, the run's cap)."""
    small = ConvShape(512, 512, 6, 6)
    assert limits_mod._first_batch(small, 16, 2e11) == 8
    assert limits_mod._first_batch(small, 4, 2e11) == 4
    assert limits_mod._first_batch(ConvShape(64, 64, 224, 224), 16, 2e11) == 1

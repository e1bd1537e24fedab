"""The device's own limits, measured in the same run: a compute ceiling and memory copy bandwidth.

Efficiency = what a pipeline achieved / the best rate this device reached in the run on the
kernels that bound it, so "how far from the limit" needs no spec sheet and holds for the
precision actually used. The compute ceiling is the best of

* square matmuls at several sizes, doubling up to the run's largest layer as a square matmul of
  the same FLOPs (or the device's cap), and
* 3x3 convolutions with the models' own largest shapes (each pipeline's widest and its most
  expensive convolution, channels and output size as in the model, batch doubled until a call
  takes a few ms or reaches the run's largest batch),

all in the run's dtype, math mode (TF32 where cuDNN uses it), memory format and backend (oneDNN
on the CPU, cuDNN on CUDA), and the kernel that set it is recorded. A model can still beat every
kernel timed (its layers are many, the ceiling's few); the report keeps that raw fraction and a
flag, and tables say "above the measured ceiling".

Problem sizes are picked on the device and everything together stays within LIMITS_TIME_S (the
run's --limits-time): a size whose predicted cost does not fit what is left is not timed, and
the report says which kernels were left out. A theoretical peak (cores x clock x FMA per cycle
x 2) is recorded beside it where the CPU reports its clock and vector width.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from emobench.measure.flops import Layer
from emobench.measure.timing import Timer
from emobench.results.measurements import DeviceLimits, KernelRate

LIMITS_TIME_S = 2.0  # all limits together, on any machine
TARGET_CALL_MS = 5.0  # grow a problem until one call takes at least this long
MIN_LIMIT_SAMPLES = 3
SIZING_CALLS = 3
MAX_REPEAT = 64  # a short call is timed as up to this many back-to-back calls
MAX_TOP_UP = 1000  # samples of one kernel at most
MATMUL_N = {"cuda": (256, 8192), "cpu": (64, 2048)}  # (first, largest) square size
MATMUL_ROUND = 64  # a model's largest layer as a square matmul, rounded up to a multiple of this
CONV_SHARES = 2  # the convolutions get twice the time of the matmul sweep or of one copy
MIN_CONV_CHANNELS = 16  # a stem with 3 input channels is no ceiling kernel
PLAN_CALL_FLOPS = 1e9  # ordering the convolutions: a 5 ms call at 200 GFLOP/s
COPY_BYTES = {"cuda": (1 << 20, 1 << 30), "cpu": (1 << 16, 256 << 20)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CPUINFO = Path("/proc/cpuinfo")


# -- what the ceiling times ----------------------------------------------------------------------


@dataclass(frozen=True)
class ConvShape:
    """A 3x3 stride-1 convolution with one of a model's largest layers' channels and output
    size; `owners` are the pipelines ("vgg16/upscale224") whose layer it stands for."""

    cin: int
    cout: int
    height: int
    width: int
    owners: tuple[str, ...] = ()

    def flops(self, batch: int) -> int:
        return 2 * 9 * self.cin * self.cout * self.height * self.width * batch

    def label(self, batch: int) -> str:
        return f"conv3x3 {self.cin}->{self.cout} @{self.height}x{self.width} b{batch}"

    def gemm_side(self, max_batch: int) -> int:
        """The smallest side of this convolution as a GEMM (output pixels x output channels x
        9 input channels) at the batch a call of about PLAN_CALL_FLOPS needs (within the run's
        largest): the larger, the nearer a kernel gets to the device's peak, so the likelier
        it is to set the ceiling."""
        batch = 1
        while batch * 2 <= max_batch and batch * self.flops(1) < PLAN_CALL_FLOPS:
            batch *= 2
        return min(self.height * self.width * batch, self.cout, 9 * self.cin)


@dataclass(frozen=True)
class CeilingPlan:
    """What the compute ceiling times beside the matmul sweep: the run's convolution shapes,
    the largest layer as a square matmul size, and the run's batch cap and memory format."""

    convs: tuple[ConvShape, ...] = ()
    matmul_n_cap: int | None = None  # None: up to the device's cap
    max_batch: int = 1
    channels_last: bool = False
    notes: tuple[str, ...] = ()  # pipelines whose shapes could not be read, and why


def _square_n(flops: int) -> int:
    """The square matmul size with the same FLOPs (2 n^3), rounded up to MATMUL_ROUND."""
    n = (max(flops, 2) / 2) ** (1 / 3)
    return int(math.ceil(n / MATMUL_ROUND) * MATMUL_ROUND)


def ceiling_plan(
    layers: Mapping[str, Sequence[Layer]],
    max_batch: int = 1,
    channels_last: bool = False,
    notes: Sequence[str] = (),
) -> CeilingPlan:
    """The kernels for the ceiling, from each pipeline's layers (measure.flops.layer_shapes):
    every pipeline's widest convolution (most input x output channels per group) and its most
    expensive one (by FLOPs), each shape once, stems with under MIN_CONV_CHANNELS input
    channels left out where another is there; ordered by their smallest GEMM side at the
    batch they will likely run at, largest first (ConvShape.gemm_side), so that when
    --limits-time cannot time them all, those likeliest to set the ceiling are timed first."""
    widest: list[tuple[str, Layer]] = []
    largest: list[tuple[str, Layer]] = []
    for owner, owned in layers.items():
        convs = [x for x in owned if x.kind == "conv"]
        convs = [x for x in convs if x.cin // x.groups >= MIN_CONV_CHANNELS] or convs
        if convs:
            widest.append((owner, max(convs, key=lambda x: (x.cin // x.groups) * x.cout)))
            largest.append((owner, max(convs, key=lambda x: x.flops)))
    shapes: dict[tuple[int, int, int, int], list[str]] = {}
    for owner, layer in widest + largest:
        owners = shapes.setdefault((layer.cin, layer.cout, layer.height, layer.width), [])
        if owner not in owners:
            owners.append(owner)
    every = [x for owned in layers.values() for x in owned]
    batch = max(1, max_batch)
    ordered = sorted(
        (ConvShape(*key, owners=tuple(o)) for key, o in shapes.items()),
        key=lambda c: -c.gemm_side(batch),
    )
    return CeilingPlan(
        convs=tuple(ordered),
        matmul_n_cap=max((_square_n(x.flops) for x in every), default=None),
        max_batch=batch,
        channels_last=channels_last,
        notes=tuple(notes),
    )


# -- timing ----------------------------------------------------------------------------------------


class Repeated:
    """`calls` back-to-back calls of `fn` as one timed call: short kernels (a small matmul, a
    CUDA convolution at the run's batch) are timed without the launch or clock overhead."""

    def __init__(self, fn: Callable[[], Any], calls: int) -> None:
        self.fn, self.calls = fn, calls

    def __call__(self) -> None:
        for _ in range(self.calls):
            self.fn()


def _doubling(first: int, last: int) -> Iterator[int]:
    size = first
    while size < last:
        yield size
        size *= 2
    yield last


def _sized(
    make: Callable[[int], Callable[[], Any]],
    sizes: Iterator[int],
    timer: Timer,
    deadline: float,
    clock: Callable[[], float],
) -> tuple[int, Callable[[], Any], list[float]]:
    """The first size whose warm call takes TARGET_CALL_MS (best of up to SIZING_CALLS, since a
    lone call can be delayed by thread-pool start-up), or the last one tried when the cap or the
    deadline comes first. Returns (size, its call, the warm samples taken at that size)."""
    size, fn = 0, None
    warm: list[float] = []
    for size in sizes:
        fn = make(size)
        timer(fn)  # first touch of fresh buffers is not the device's rate
        warm = []
        while len(warm) < SIZING_CALLS and (not warm or clock() < deadline):
            warm.append(timer(fn))
        if min(warm) >= TARGET_CALL_MS or clock() >= deadline:
            break
    assert fn is not None
    return size, fn, warm


def _best_ms(
    fn: Callable[[], Any],
    timer: Timer,
    seconds: float,
    have: list[float],
    clock: Callable[[], float],
) -> float:
    """The best call time: the samples so far, topped up while `seconds` last (one call at
    least when any time is left). A plain loop: no stopping rule to compute, so nothing but
    the calls is paid (time_loop's interval would import scipy on a run's first use)."""
    if seconds <= 0:
        return min(have)
    end = clock() + seconds
    samples = list(have)
    for _ in range(MAX_TOP_UP):
        samples.append(timer(fn))
        if clock() >= end:
            break
    return min(samples)


def _samples(
    fn: Callable[[], Any], timer: Timer, deadline: float, clock: Callable[[], float]
) -> tuple[Callable[[], Any], int, list[float]]:
    """One untimed first touch, then up to SIZING_CALLS timed calls (at least one) while the
    deadline allows; short calls are repeated back to back (Repeated) and read per call.
    Returns (the call as timed, calls per timed call, ms per call of each sample)."""
    timer(fn)  # first touch: buffers, thread pool, kernel selection (oneDNN, cuDNN autotune)
    first = timer(fn)
    calls = 1
    if 0 < first < TARGET_CALL_MS:
        calls = min(MAX_REPEAT, math.ceil(TARGET_CALL_MS / first))
    timed: Callable[[], Any] = fn if calls == 1 else Repeated(fn, calls)
    out = [first] if calls == 1 else [timer(timed) / calls]
    while len(out) < SIZING_CALLS and clock() < deadline:
        out.append(timer(timed) / calls)
    return timed, calls, out


def _sweep(
    make: Callable[[int], Callable[[], Any]],
    sizes: Sequence[int],
    timer: Timer,
    seconds: float,
    clock: Callable[[], float],
) -> list[tuple[int, float]]:
    """(n, best ms per call) of square matmuls at every size in `sizes` that fits in `seconds`:
    a size is left out when its first two calls at their predicted cost (from the previous
    size, n^3) and a block of short calls do not fit what is left. The best size is then
    sampled again with the time that remains."""
    deadline = clock() + seconds
    out: list[tuple[int, float]] = []
    best: tuple[float, Callable[[], Any], int, list[float]] | None = None  # rate, fn, calls, ms
    for n in sizes:
        if out:
            prev_n, prev_ms = out[-1]
            call_ms = prev_ms * (n / prev_n) ** 3
            predicted_s = (2 * call_ms + max(0.0, TARGET_CALL_MS - call_ms)) / 1000
            if clock() >= deadline or predicted_s > deadline - clock():
                break
        timed, calls, ms = _samples(make(n), timer, deadline, clock)
        out.append((n, min(ms)))
        rate = n**3 / min(ms)
        if best is None or rate > best[0]:
            best = (rate, timed, calls, ms)
    assert best is not None
    _, timed, calls, ms = best
    n_best = max(out, key=lambda p: p[0] ** 3 / p[1])[0]
    topped = _best_ms(timed, timer, deadline - clock(), [m * calls for m in ms], clock) / calls
    return [(n, min(m, topped) if n == n_best else m) for n, m in out]


def matmul_call(device: torch.device, dtype: torch.dtype, n: int) -> Callable[[], Any]:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b)


def conv_call(
    device: torch.device, dtype: torch.dtype, shape: ConvShape, batch: int, channels_last: bool
) -> Callable[[], Any]:
    """A 3x3 stride-1 convolution (padding 1, no bias) keeping `shape`'s output size, in the
    model's dtype and memory format, under inference_mode as the pipelines run."""
    x = torch.randn(batch, shape.cin, shape.height, shape.width, device=device, dtype=dtype)
    w = torch.randn(shape.cout, shape.cin, 3, 3, device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)

    def call() -> Any:
        with torch.inference_mode():
            return F.conv2d(x, w, padding=1)

    return call


def conv_backend(device: torch.device) -> str:
    """What runs the convolutions: cuDNN or oneDNN when enabled, else PyTorch's own kernels."""
    if device.type == "cuda":
        cudnn = torch.backends.cudnn
        return "cuDNN" if cudnn.is_available() and cudnn.enabled else "native"
    mkldnn = torch.backends.mkldnn
    return "oneDNN" if mkldnn.is_available() and mkldnn.enabled else "native"


def _first_batch(shape: ConvShape, max_batch: int, rate: float) -> int:
    """The power of two batch whose call should take TARGET_CALL_MS at `rate` FLOP/s (at most
    the run's largest batch): where the batch doubling would end, without its smaller steps."""
    wanted = TARGET_CALL_MS / 1000 * rate / shape.flops(1)
    batch = 1
    while batch * 2 <= max_batch and batch < wanted:
        batch *= 2
    return batch


def _convs(
    make: Callable[[ConvShape, int], Callable[[], Any]],
    plan: CeilingPlan,
    timer: Timer,
    seconds: float,
    clock: Callable[[], float],
    rate_hint: float,
) -> tuple[list[KernelRate], list[str], list[str]]:
    """Each convolution of the plan, in its order, with an even share of the time left: at the
    batch predicted to take TARGET_CALL_MS at the best rate seen so far (`rate_hint` FLOP/s:
    the matmul's, then any convolution's), doubled while a call is still under it and the run's
    largest batch allows. A shape whose first two calls at batch 1, at that rate, do not fit
    what is left is not timed. Returns the rates, the shapes left out for time and those that
    failed (with why)."""
    deadline = clock() + seconds
    rates: list[KernelRate] = []
    no_time: list[str] = []
    failed: list[str] = []
    for i, shape in enumerate(plan.convs):
        left = deadline - clock()
        if left <= 0 or 2 * shape.flops(1) / rate_hint > left:
            no_time.append(shape.label(1))
            continue
        own_deadline = clock() + left / (len(plan.convs) - i)
        try:
            batch = _first_batch(shape, plan.max_batch, rate_hint)
            timed, calls, ms = _samples(make(shape, batch), timer, own_deadline, clock)
            while (
                min(ms) < TARGET_CALL_MS
                and batch * 2 <= plan.max_batch
                and clock() + 4 * min(ms) / 1000 < own_deadline
            ):
                batch *= 2
                timed, calls, ms = _samples(make(shape, batch), timer, own_deadline, clock)
            best = _best_ms(timed, timer, own_deadline - clock(), [m * calls for m in ms], clock)
        except (RuntimeError, NotImplementedError) as e:  # a dtype the backend lacks, OOM
            first_line = (str(e).splitlines() or [""])[0]
            failed.append(f"{shape.label(1)} ({type(e).__name__}: {first_line})")
            continue
        rate = shape.flops(batch) / (best / calls / 1000)
        rates.append(KernelRate(shape.label(batch), rate, list(shape.owners)))
        rate_hint = max(rate_hint, rate)
    return rates, no_time, failed


def copy_call(
    device: torch.device, size: int, src_device: torch.device | None = None
) -> Callable[[], Any]:
    """dst.copy_(src) of `size` bytes; with `src_device`, from pinned host memory (H2D)."""
    source = src_device or device
    src = torch.empty(size, dtype=torch.uint8, device=source).fill_(1)
    if source.type == "cpu" and device.type == "cuda":
        src = src.pin_memory()
    dst = torch.empty(size, dtype=torch.uint8, device=device)
    return lambda: dst.copy_(src, non_blocking=src.is_pinned())


def _rate(
    make: Callable[[int], Callable[[], Any]],
    first_last: tuple[int, int],
    timer: Timer,
    time_s: float,
    clock: Callable[[], float],
) -> tuple[int, float]:
    """(size picked, best ms per call) within `time_s`: half sizing, the rest sampling."""
    started = clock()
    size, fn, warm = _sized(make, _doubling(*first_last), timer, started + time_s / 2, clock)
    return size, _best_ms(fn, timer, started + time_s - clock(), warm, clock)


def _matmul_tf32(allowed: bool | None) -> AbstractContextManager[None]:
    """TF32 for the reference matmuls as the run has it, through the API this torch wants
    (reading allow_tf32 after fp32_precision was set raises on torch >= 2.9)."""
    from emobench.device import matmul_tf32

    return matmul_tf32(allowed)


def matmul_math(device: torch.device, precision: str) -> str:
    """The math the model's convolutions use, which the reference matmul must use too: on CUDA
    in fp32, cuDNN convolutions run in TF32 while cudnn.allow_tf32 is set (torch's default)."""
    if precision != "fp32":
        return precision
    if device.type == "cuda":
        from emobench.device import tf32_state

        if tf32_state()["conv"]:
            return "tf32"
    return "ieee fp32"


# -- the theoretical peak ------------------------------------------------------------------------


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in text.split("\n\n"):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def _fma_per_cycle(flags: set[str], vendor: str, family: int | None) -> tuple[int, str] | None:
    """fp32 multiply-adds a core retires per cycle, from its widest FMA instructions."""
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family is not None and family < 26:
            return 16, "AVX-512 on two 256-bit FMA units (AMD Zen 4)"
        return 32, "AVX-512, two 512-bit FMA units assumed (parts with one reach half)"
    if "avx2" in flags and "fma" in flags:
        return 16, "AVX2, two 256-bit FMA units"
    return None


def cpu_peak(
    cpuinfo: str,
    cpus: Collection[int] | None,
    threads: int,
    precision: str,
    max_mhz: float | None = None,
) -> tuple[float | None, str]:
    """(theoretical peak FLOP/s, how it was computed) or (None, why there is none): cores x
    clock x fp32 FMA per cycle x 2 FLOP per FMA, over the physical cores among `cpus` (the
    process's affinity), at most `threads` (the run's torch threads). The clock is `max_mhz`
    (psutil's maximum) where known, else /proc/cpuinfo's `cpu MHz`."""
    blocks = [b for b in _cpuinfo_blocks(cpuinfo) if "processor" in b]
    if not blocks:
        return None, "no theoretical peak: /proc/cpuinfo lists no processors"
    mine = [b for b in blocks if cpus is None or _int(b.get("processor")) in cpus] or blocks
    flags = set(mine[0].get("flags", "").split())
    vendor, family = mine[0].get("vendor_id", ""), _int(mine[0].get("cpu family"))
    fma = _fma_per_cycle(flags, vendor, family)
    if fma is None:
        return None, "no theoretical peak: the CPU reports no AVX2/AVX-512 FMA (flags)"
    per_cycle, width = fma
    if precision == "bf16":
        if "amx_bf16" in flags:
            return None, "no theoretical peak for bf16: AMX tiles have no simple per-core formula"
        if "avx512_bf16" not in flags:
            return None, "no theoretical peak for bf16: no native bf16 instructions (emulated)"
        per_cycle, width = per_cycle * 2, width + ", avx512_bf16 pairs: twice the fp32 rate"
    elif precision != "fp32":
        return None, f"no theoretical peak for {precision} on a CPU"
    if all("core id" in b for b in mine):
        physical = len({(b.get("physical id"), b["core id"]) for b in mine})
    else:
        physical = len(mine)
    cores = max(1, min(physical, threads))
    mhz_read = [v for b in mine if (v := _float(b.get("cpu MHz"))) is not None and v > 0]
    if max_mhz is not None and max_mhz > 0:
        mhz, source = max_mhz, "the maximum clock psutil reports"
    elif mhz_read:
        mhz, source = max(mhz_read), "/proc/cpuinfo 'cpu MHz' (turbo can run above it)"
    else:
        return None, "no theoretical peak: the CPU reports no clock frequency"
    peak = cores * mhz * 1e6 * per_cycle * 2
    how = (
        f"{cores} core{'s' if cores != 1 else ''} x {mhz:.0f} MHz x {per_cycle} FMA/cycle "
        f"({width}) x 2 FLOP per FMA; clock from {source}"
    )
    return peak, how


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def theoretical_peak(device: torch.device, precision: str) -> tuple[float | None, str]:
    """This machine's theoretical peak for the run (cpu_peak on the CPU), or why it has none."""
    if device.type != "cpu":
        return None, (
            f"no theoretical peak on {device.type}: its FMA rate per SM depends on the "
            "architecture and the tensor-core math, which the run does not read"
        )
    try:
        text = CPUINFO.read_text()
    except OSError as e:
        return None, f"no theoretical peak: {CPUINFO} unreadable ({e.strerror})"
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    max_mhz = None
    try:
        import psutil

        freq = psutil.cpu_freq()
        max_mhz = float(freq.max) if freq is not None and freq.max else None
    except (ImportError, OSError, NotImplementedError, AttributeError):
        max_mhz = None
    return cpu_peak(text, cpus, torch.get_num_threads(), precision, max_mhz)


# -- all limits --------------------------------------------------------------------------------


def _matmul_sizes(first: int, last: int, cap: int | None) -> list[int]:
    """Doubling from `first` up to the largest layer's square size (`cap`, within the device's
    `last`), which closes the list."""
    top = last if cap is None else max(first, min(last, cap))
    return list(_doubling(first, top))


def measure_limits(
    device: torch.device,
    precision: str,
    timer: Timer,
    time_s: float = LIMITS_TIME_S,
    clock: Callable[[], float] = time.perf_counter,
    host_timer: Timer | None = None,
    plan: CeilingPlan | None = None,
) -> DeviceLimits:
    """The compute ceiling (matmul sweep and the plan's convolutions, in the model's math mode)
    and copy bandwidth, sized and timed within `time_s`; on CUDA also the host's memcpy and
    pinned host-to-device bandwidth, for the host work and the copy part of preprocessing
    (`host_timer` times host work). Without a plan, the ceiling is the matmul sweep alone."""
    plan = plan or CeilingPlan()
    dtype = DTYPES[precision]
    cuda = device.type == "cuda"
    share = time_s / ((4 if cuda else 2) + (CONV_SHARES if plan.convs else 0))
    math_mode = matmul_math(device, precision)
    tf32 = (math_mode == "tf32") if cuda and precision == "fp32" else None

    def matmul(n: int) -> Callable[[], Any]:
        return matmul_call(device, dtype, n)

    def conv(shape: ConvShape, batch: int) -> Callable[[], Any]:
        return conv_call(device, dtype, shape, batch, plan.channels_last)

    first, last = MATMUL_N.get(device.type, MATMUL_N["cpu"])
    started = clock()
    with _matmul_tf32(tf32):
        matmul(first)()  # one-time library initialisation (BLAS, oneDNN, cuBLAS)
        sweep = _sweep(matmul, _matmul_sizes(first, last, plan.matmul_n_cap), timer, share, clock)
    kernels = [KernelRate(f"matmul n={n}", 2 * n**3 / (ms / 1000)) for n, ms in sweep]
    best_matmul = max(range(len(sweep)), key=lambda i: kernels[i].flops_per_s)
    convs: list[KernelRate] = []
    no_time: list[str] = []
    failed: list[str] = []
    if plan.convs:
        hint = kernels[best_matmul].flops_per_s
        convs, no_time, failed = _convs(conv, plan, timer, CONV_SHARES * share, clock, hint)
    kernels += convs
    ceiling = max(kernels, key=lambda k: k.flops_per_s)
    copy_range = COPY_BYTES.get(device.type, COPY_BYTES["cpu"])
    size, copy_ms = _rate(lambda b: copy_call(device, b), copy_range, timer, share, clock)
    host = h2d = None
    if cuda:
        cpu = torch.device("cpu")
        host = _rate(
            lambda b: copy_call(cpu, b), COPY_BYTES["cpu"], host_timer or timer, share, clock
        )
        h2d = _rate(lambda b: copy_call(device, b, cpu), copy_range, timer, share, clock)
    elapsed = clock() - started
    peak, peak_how = theoretical_peak(device, precision)
    notes = list(plan.notes)
    if no_time:
        notes.append(f"not timed within --limits-time {time_s:g} s: " + ", ".join(no_time))
    if failed:
        notes.append("failed: " + "; ".join(failed))
    return DeviceLimits(
        matmul_flops_per_s=kernels[best_matmul].flops_per_s,
        matmul_dtype=precision,
        matmul_n=sweep[best_matmul][0],
        copy_bytes_per_s=2 * size / (copy_ms / 1000),
        copy_bytes=size,
        elapsed_s=elapsed,
        matmul_math=math_mode,
        host_copy_bytes_per_s=2 * host[0] / (host[1] / 1000) if host else None,
        h2d_bytes_per_s=h2d[0] / (h2d[1] / 1000) if h2d else None,
        ceiling_flops_per_s=ceiling.flops_per_s,
        ceiling_kernel=ceiling.kernel + (f" ({', '.join(ceiling.owners)})" * bool(ceiling.owners)),
        kernels=kernels,
        conv_backend=conv_backend(device) if plan.convs else None,
        ceiling_note="; ".join(notes) or None,
        peak_flops_per_s=peak,
        peak_how=peak_how,
    )

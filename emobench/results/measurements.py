"""The measurements' result types: what each tracker in `measure/` returns and a report holds.

Plain dataclasses, no torch: a report is rebuilt from JSON without importing the trackers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from emobench.stats.summary import Stats


@dataclass(frozen=True)
class StepShare:
    step: str
    wall_s: float
    other_cpu_fraction: float


@dataclass(frozen=True)
class Contention:
    """What else the machine was doing during the run; `busy` says timings may be distorted."""

    wall_s: float
    usable_cores: int
    own_cpu_s: float
    others_cpu_s: float
    other_cpu_fraction: float  # of wall time x usable cores
    load_avg_1m: float | None  # at the end of the run
    cpu_freq_mhz_min: float | None  # lowest current frequency seen at a step boundary
    cpu_freq_mhz_max: float | None
    gpu_other_processes: int | None  # compute processes on the GPU besides this one
    busy: bool
    busy_steps: list[StepShare] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    unused: int  # parameters whose memory no operator read during one forward pass


@dataclass(frozen=True)
class KernelRate:
    """One kernel timed for the compute ceiling: a square matmul or a 3x3 convolution with a
    model's own shapes, its best rate, and the pipelines whose layers it stands for."""

    kernel: str  # "matmul n=1024", "conv3x3 512->512 @28x28 b1"
    flops_per_s: float
    owners: list[str] = field(default_factory=list)  # "vgg16/upscale224"; none for a matmul


@dataclass(frozen=True)
class DeviceLimits:
    matmul_flops_per_s: float  # best of the timed samples: the device's demonstrated rate
    matmul_dtype: str
    matmul_n: int  # the square size whose rate was best
    copy_bytes_per_s: float  # bytes read + bytes written per second, best sample
    copy_bytes: int  # the buffer size picked on this device
    elapsed_s: float | None = None  # sizing and timing, both limits
    matmul_math: str | None = None  # tf32, ieee fp32, bf16, fp16: the model's conv math
    host_copy_bytes_per_s: float | None = None  # CUDA runs: host memcpy, read + write
    h2d_bytes_per_s: float | None = None  # CUDA runs: pinned host -> device, bytes moved
    # the compute ceiling: the best rate of every kernel in `kernels` (matmul at several sizes
    # up to the models' largest layer, 3x3 convolutions with their largest shapes, in the run's
    # math mode and backend); None in reports written before it existed
    ceiling_flops_per_s: float | None = None
    ceiling_kernel: str | None = None  # the kernel that set it, as in KernelRate.kernel
    kernels: list[KernelRate] = field(default_factory=list)
    conv_backend: str | None = None  # oneDNN, cuDNN or native: what ran the convolutions
    ceiling_note: str | None = None  # kernels not timed (time ran out, shapes unknown), why
    # cores x clock x FMA per cycle x 2 where the CPU reports its clock; else None
    peak_flops_per_s: float | None = None
    peak_how: str | None = None  # the formula with its numbers, or why there is no peak


@dataclass(frozen=True)
class ProbeOutcome:
    outcome: str  # ok, oom, over_budget or error
    peak_bytes: int | None = None
    message: str | None = None
    reserved_bytes: int | None = None  # CUDA: the caching allocator's peak reserved


@dataclass(frozen=True)
class Probe:
    batch_size: int
    outcome: str
    peak_bytes: int | None
    seconds: float
    message: str | None = None
    reserved_bytes: int | None = None


@dataclass(frozen=True)
class LinearFit:
    """peak_bytes = fixed_bytes + per_image_bytes * batch, fitted by least squares."""

    fixed_bytes: float
    per_image_bytes: float
    points: list[list[int]]  # [batch, peak_bytes]

    @classmethod
    def from_points(cls, points: list[tuple[int, int]]) -> LinearFit:
        if len({b for b, _ in points}) < 2:
            raise ValueError("a linear fit needs two different batch sizes")
        n = len(points)
        mx = sum(b for b, _ in points) / n
        my = sum(m for _, m in points) / n
        sxx = sum((b - mx) ** 2 for b, _ in points)
        sxy = sum((b - mx) * (m - my) for b, m in points)
        slope = sxy / sxx
        return cls(my - slope * mx, slope, [[b, m] for b, m in points])

    def predict(self, batch: int) -> float:
        return self.fixed_bytes + self.per_image_bytes * batch

    def largest_batch_under(self, budget_bytes: int, cap: int) -> int:
        if self.per_image_bytes <= 0:
            return cap
        exact = (budget_bytes - self.fixed_bytes) / self.per_image_bytes
        return max(0, min(cap, math.floor(exact + 1e-9)))  # 89.99999999 from rounding is 90


@dataclass(frozen=True)
class PeakMemory:
    """Peak memory while one call ran; a field that this device cannot measure is None."""

    method: str
    tensor_peak_bytes: int | None = None
    cpu_peak_rss_growth_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None
    nvml_device_used_bytes: int | None = None
    # CUDA: the peaks above are this call's own, as if its pipeline were alone on the device:
    # (peak - allocated just before the call) + its own resident tensors (weights, buffers,
    # inputs, optimizer state). Both parts are kept: everything allocated just before the call
    # (another pipeline's model included), and this pipeline's own share of it
    cuda_allocated_before_bytes: int | None = None
    cuda_own_resident_bytes: int | None = None


@dataclass(frozen=True)
class MonitorResult:
    """NVML memory sampled in a background thread during a pass of back-to-back calls of its
    own (after the timed loop), and the GPU energy over that pass's window: absent, with
    `energy_note`, when the window held too few updates of NVML's energy counter to read it."""

    samples: int
    interval_s: float
    device_used_peak_bytes: int | None
    device_used_mean_bytes: float | None
    process_used_peak_bytes: int | None
    process_used_mean_bytes: float | None
    energy_joules: float | None
    images: int | None = None  # images processed during the monitored pass
    process_match: str | None = None  # how this process was found in NVML's list, or why not
    window_s: float | None = None  # the pass's length: first call to the last one's end
    calls: int | None = None  # back-to-back calls made in the window
    energy_updates: int | None = None  # distinct changes of NVML's energy counter seen in it
    energy_update_interval_s: float | None = None  # the counter's observed update interval
    energy_note: str | None = None  # why energy_joules is absent, when it is


@dataclass(frozen=True)
class TimingResult:
    """Timing of one callable: the first (cold) call, the warmup count and the timed samples."""

    cold_start_ms: float | None  # None when the loop started on an already warm callable
    warmup_iters: int
    stats: Stats  # unit "ms" per call
    timer: str  # "perf_counter_ns" or "cuda_event"
    stop_reason: str | None = None  # one of STOP_REASONS (None in reports before it existed)
    elapsed_s: float | None = None  # time spent in the timed samples
    block_calls: int | None = None  # back-to-back calls per sample (1: per-call timing)


@dataclass(frozen=True)
class Parity:
    """The exported file against torch eager on the same probe batch (fp32 exports are held
    to `tolerance` x `logit_scale`; an int8 file is compared, not held to it)."""

    batch_size: int
    max_abs_diff: float  # the largest |runtime logit - torch logit|
    logit_scale: float  # the largest |torch logit| on the batch (at least 1)
    top1_agreement: float  # fraction of the batch whose arg-max class agrees
    tolerance: float  # relative: passed when max_abs_diff <= tolerance x logit_scale
    passed: bool | None  # None: not held to the tolerance (an int8 file is compared only)


@dataclass(frozen=True)
class FreshStart:
    """The runtime file opened in a fresh process (no torch imported there): session creation,
    the first batch-1 inference, and the process's peak resident memory."""

    session_create_ms: float
    first_infer_ms: float
    peak_rss_bytes: int  # the process's high-water mark after the first inference
    base_rss_bytes: int  # its resident memory before the session (interpreter and runtime)

    @property
    def cold_start_ms(self) -> float:
        return self.session_create_ms + self.first_infer_ms


@dataclass(frozen=True)
class Deployment:
    """How a pipeline was made deployable and what the file costs: the export, its parity
    with torch, the runtime's settings in force, the file on disk and a fresh process's start."""

    format: str  # "onnx"
    exporter: str  # "dynamo" (torch.export-based) or "torchscript" (the fallback)
    opset: int
    file_bytes: int  # the .onnx file and its external weights (.onnx.data), together
    inside_graph: str  # what the file computes; the rest runs as in the torch pipelines
    settings: dict[str, Any]  # runtime version, providers, threads, optimisation level, ...
    parity: Parity | None = None
    quantization: dict[str, Any] | None = None  # method, calibration images and their source
    fresh: FreshStart | None = None
    fresh_note: str | None = None  # how `fresh` was taken, or why it is absent
    # seconds this deploy spent writing files (export, quantization); None: it reused the fp32 file
    export_s: float | None = None

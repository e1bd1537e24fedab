"""What a report holds: plain dataclasses, no torch, no rendering (`results.io` reads and
writes them as versioned JSON; `results.metrics` turns them into flat metric rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emobench.names import TORCH_RUNTIME, variant_label
from emobench.results.finetune import FinetuneSummary
from emobench.results.measurements import (
    Contention,
    Deployment,
    DeviceLimits,
    LinearFit,
    MonitorResult,
    ParamCounts,
    PeakMemory,
    Probe,
    TimingResult,
)
from emobench.results.stream import StreamSummary
from emobench.stats.summary import Stats

SCHEMA = "emobench.report"
SCHEMA_VERSION = 1
MIN_SCHEMA_VERSION = 1  # the oldest version this emobench reads
KINDS = ("compare", "run", "maxbatch", "finetune", "stream")

MAX_REPORT_BYTES = 256 * 2**20  # ours are a few MB; anything larger is refused unread


@dataclass(frozen=True)
class Transfer:
    source: str
    copied: list[str]
    derived: dict[str, str]
    fresh: list[str]


@dataclass(frozen=True)
class PreprocessResult:
    path: str  # "per_image_pil" or "batched_tensor"
    images: int  # images per timed call
    us_per_image: Stats
    stop_reason: str | None = None  # why its timed loop ended (see measure.timing)
    block_calls: int | None = None  # calls per timed sample (1: per-call timing)


@dataclass(frozen=True)
class BatchTiming:
    batch_size: int
    images_per_s: float  # batch_size / median seconds per call
    timing: TimingResult


@dataclass(frozen=True)
class MemoryResult:
    input_bytes_per_image: int  # the float tensor the model consumes, per image
    weight_bytes: int  # parameters and buffers
    peak_batch_size: int | None
    peak: PeakMemory | None


@dataclass(frozen=True)
class TrainResult:
    batch_size: int
    images_per_s: float  # batch_size / median seconds per optimizer step
    timing: TimingResult  # one step: forward, loss, backward, SGD-with-momentum update
    peak: PeakMemory | None


@dataclass(frozen=True)
class TransferResult:
    """Getting one batch of this pipeline's input onto the device (CUDA only)."""

    batch_size: int
    placement: str  # copy_uint8_48 | host_upscale_then_copy_f32 | copy_uint8_then_device_upscale
    bytes_moved: int  # host -> device bytes per batch
    pinned: bool
    copy_ms: float  # median of the copy alone
    total_ms: float  # median of the whole placement: preprocessing and copy


@dataclass(frozen=True)
class Efficiency:
    """Achieved rates as fractions of this device's measured limits (see DeviceLimits)."""

    batch_size: int  # the throughput batch with the most images/s
    achieved_flops_per_s: float
    # achieved / the run's compute ceiling (DeviceLimits.ceiling_flops_per_s), raw: a model
    # that beats every kernel timed reads > 1 and `above_ceiling`. (The name is older than the
    # ceiling: reports without `ceiling_kernel` divided by a plain square matmul's rate.)
    matmul_fraction: float
    preprocess_bytes_per_s: dict[str, float]  # path -> bytes read + written per second
    preprocess_copy_fraction: dict[str, float]  # path -> fraction of the copy bandwidth
    ceiling_kernel: str | None = None  # the kernel whose rate matmul_fraction divides by
    above_ceiling: bool = False  # achieved more than the measured ceiling: shown as such


@dataclass(frozen=True)
class PipelineResult:
    backbone: str
    pipeline: str
    input_size: int
    feature_map: list[int]
    transfer: Transfer
    params: ParamCounts
    flops_per_image: int | None
    latency: TimingResult | None  # batch 1
    throughput: list[BatchTiming]
    end_to_end: list[BatchTiming]
    preprocess: list[PreprocessResult]
    memory: MemoryResult
    compile_s: float | None = None  # first compiled call (compilation + one run), seconds
    error: str | None = None  # a failure (e.g. compilation) that left timings unmeasured
    train: list[TrainResult] = field(default_factory=list)
    to_device: list[TransferResult] = field(default_factory=list)
    gpu_monitor: MonitorResult | None = None  # NVML samples during the largest-batch throughput
    efficiency: Efficiency | None = None
    # --compile: the first compiled call at each batch size (its compilation plus one run), in
    # seconds, keyed by the batch size; every shape is compiled before anything is timed
    compile_s_per_batch: dict[str, float] = field(default_factory=dict)
    cold_start_note: str | None = None  # how latency.cold_start_ms was taken, or why it is absent
    # the runtime variant (see config.Variant): how the model was called; one report may hold
    # several side by side, each a full set of both pipelines' results
    runtime: str = TORCH_RUNTIME
    quantize: str | None = None  # "int8": the runtime ran the quantized file
    threads: int | None = None  # a --threads sweep's count; None: the run's threads
    deployment: Deployment | None = None  # the exported file (runtimes other than torch)

    @property
    def variant(self) -> str:
        return variant_label(self.runtime, self.quantize, self.threads)


@dataclass(frozen=True)
class MaxBatchResult:
    backbone: str
    pipeline: str
    mode: str  # "infer" or "train"
    method: str  # "probed" (CUDA search) or "predicted+confirmed" (CPU fit + child run)
    budget_bytes: int
    max_batch: int  # largest batch that ran; 0 when batch 1 does not fit
    safe_batch: int  # max_batch less the margin
    margin: float
    capped: bool  # --max-batch was reached: the real limit may be higher
    confirmed: bool | None
    peak_bytes_at_max: int | None
    bytes_per_extra_image: float | None
    probes: list[Probe]
    error: str | None = None
    fit: LinearFit | None = None
    predicted_peak_bytes: float | None = None
    fit_error: float | None = None  # (measured - predicted) / measured at the confirmation
    child_base_bytes: int | None = None  # RSS of a fresh process with the model built (CPU)
    reserved_bytes_at_max: int | None = None  # CUDA: allocator's reserved peak at the max batch
    non_allocator_bytes: int | None = None  # CUDA: context, handles, others: charged to budget
    # where the max batch was confirmed ("fresh process" on both devices), and the memory the
    # budget still had at it there: CUDA: the search's allocator cap less the fresh process's
    # peak reserved; CPU: the budget less the confirmed child's peak RSS
    confirmed_in: str | None = None
    confirm_margin_bytes: int | None = None
    # CUDA: memory outside the allocator measured again after the largest batch that fit (lazily
    # loaded kernels and library workspaces grow it); above non_allocator_bytes, the budget was
    # charged too little and the max batch may not fit the budget in a fresh process
    non_allocator_bytes_at_max: int | None = None
    runtime: str = TORCH_RUNTIME  # onnxruntime: the exported file, probed in torch-free processes


@dataclass(frozen=True)
class PairedRatio:
    """A headline ratio measured in interleaved rounds (ABBA) of both pipelines: one sample of
    each per round, one ratio per round; the median and its 95% interval (order statistics)."""

    backbone: str
    key: str  # the metric key, e.g. latency_b1_median_ms
    rounds: int
    ratio: float  # median of the per-round ratios, oriented so > 1 means direct48 wins
    ci_low: float | None
    ci_high: float | None
    stop_reason: str
    ratios: list[float]
    variant: str = TORCH_RUNTIME  # the runtime variant both pipelines ran in (see PipelineResult)

    @classmethod
    def from_rounds(
        cls,
        backbone: str,
        key: str,
        ratios: list[float],
        stop_reason: str,
        variant: str = TORCH_RUNTIME,
    ) -> PairedRatio:
        from emobench.stats.summary import Stats

        stats = Stats.from_samples(ratios, "x")
        return cls(
            backbone,
            key,
            len(ratios),
            stats.median,
            stats.median_ci_low,
            stats.median_ci_high,
            stop_reason,
            list(ratios),
            variant,
        )


@dataclass(frozen=True)
class RunBudget:
    """--time-budget: how much was given, spent, and the step at which it ran out (if it did)."""

    time_budget_s: float
    spent_s: float
    exhausted_at: str | None


@dataclass(frozen=True)
class Report:
    kind: str  # "compare" or "run"
    created_utc: str
    wall_time_s: float
    config: dict[str, Any]
    environment: dict[str, Any]
    results: list[PipelineResult]
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    maxbatch: list[MaxBatchResult] = field(default_factory=list)
    limits: DeviceLimits | None = None
    notes: list[str] = field(default_factory=list)
    contention: Contention | None = None  # other load on the machine during the run
    budget: RunBudget | None = None
    paired: list[PairedRatio] = field(default_factory=list)
    # A/A calibration (emobench calibrate), both keyed "backbone/metric": the thresholds it
    # printed (for the record: check derives them again from run_ratios and gate_alpha), and
    # the ratio of every run
    thresholds: dict[str, float] = field(default_factory=dict)
    run_ratios: dict[str, list[float]] = field(default_factory=dict)
    gate_alpha: float | None = None  # the whole gate's false-alarm rate calibration chose
    finetune: FinetuneSummary | None = None  # kind "finetune": training, test scores, paired
    stream: StreamSummary | None = None  # kind "stream": LoadGen runs per pipeline and scenario

    @property
    def variants(self) -> list[str]:
        """The runtime variants the report holds, in the order measured (["torch"] for every
        report before runtimes existed)."""
        return list(dict.fromkeys(r.variant for r in self.results)) or [TORCH_RUNTIME]

    def _variant(self, variant: str | None) -> str:
        return self.variants[0] if variant is None else variant

    def view(self, variant: str) -> Report:
        """This report with only one variant's results and paired ratios: what every reader
        that knows two pipelines per backbone (metric rows, the check, claims) works on."""
        import dataclasses

        return dataclasses.replace(
            self,
            results=[r for r in self.results if r.variant == variant],
            paired=[p for p in self.paired if p.variant == variant],
        )

    def paired_ratio(
        self, backbone: str, key: str, variant: str | None = None
    ) -> PairedRatio | None:
        """A headline ratio of `variant` (None: the report's first variant)."""
        v = self._variant(variant)
        return next(
            (p for p in self.paired if p.backbone == backbone and p.key == key and p.variant == v),
            None,
        )

    def result(
        self, backbone: str, pipeline: str, variant: str | None = None
    ) -> PipelineResult | None:
        """One pipeline's result in `variant` (None: the report's first variant)."""
        v = self._variant(variant)
        for r in self.results:
            if r.backbone == backbone and r.pipeline == pipeline and r.variant == v:
                return r
        return None

    @property
    def backbones(self) -> list[str]:
        return list(dict.fromkeys(r.backbone for r in self.results))


# -- JSON --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    backbone: str
    pipeline: str
    input_size: int
    params_total: int
    flops_per_image: int
    feature_map: list[int]
    family: str = ""
    direct48_rule: str = ""  # how the family is adapted to 48x48 inputs

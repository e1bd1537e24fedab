"""Reports: plain dataclasses, versioned JSON written atomically, and flat metric rows.

No rendering here (that is `render.py`), so baselines and scripts can load reports cheaply.
Importing this module does not import torch: the measurement result types (whose modules
do) are resolved only when a report is rebuilt from JSON, after its header has been checked.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from emobench import files
from emobench.errors import ReportError

if TYPE_CHECKING:
    from emobench.finetune_results import FinetuneSummary
    from emobench.measure.contention import Contention
    from emobench.measure.flops import ParamCounts
    from emobench.measure.limits import DeviceLimits
    from emobench.measure.maxbatch import LinearFit, Probe
    from emobench.measure.memory import PeakMemory
    from emobench.measure.nvml import MonitorResult
    from emobench.measure.timing import TimingResult
    from emobench.stats.summary import Stats

# the metric catalogue lives in emobench.metrics; these names stay importable from here
from emobench.metrics import (  # noqa: F401
    DIRECT,
    EXACT,
    MACHINE,
    PORTABLE,
    UPSCALE,
    MetricDef,
    MetricRow,
    batch_sizes_of,
    metric_defs,
    metric_rows,
    ratio,
    stats_for,
)

SCHEMA = "emobench.report"
SCHEMA_VERSION = 1
MIN_SCHEMA_VERSION = 1  # the oldest version this emobench reads
KINDS = ("compare", "run", "maxbatch", "finetune")
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
    matmul_fraction: float
    preprocess_bytes_per_s: dict[str, float]  # path -> bytes read + written per second
    preprocess_copy_fraction: dict[str, float]  # path -> fraction of the copy bandwidth


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

    @classmethod
    def from_rounds(
        cls, backbone: str, key: str, ratios: list[float], stop_reason: str
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

    def paired_ratio(self, backbone: str, key: str) -> PairedRatio | None:
        return next((p for p in self.paired if p.backbone == backbone and p.key == key), None)

    def result(self, backbone: str, pipeline: str) -> PipelineResult | None:
        for r in self.results:
            if r.backbone == backbone and r.pipeline == pipeline:
                return r
        return None

    @property
    def backbones(self) -> list[str]:
        return list(dict.fromkeys(r.backbone for r in self.results))


# -- JSON --------------------------------------------------------------------------------------

T = TypeVar("T")


def to_dict(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["metrics"] = [dataclasses.asdict(row) for row in metric_rows(report)]
    return data


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename (see files.write_atomic)."""
    files.write_atomic(path, text)


def save(report: Report, path: Path) -> None:
    try:
        write_atomic(path, to_json(report))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write report ({exc.strerror or exc})") from None


def check_header(data: Any, source: str = "report") -> str:
    """The checks that need no rebuilding (and no torch): a JSON object of our schema, a
    version this emobench reads, a known kind and at least one result. Returns the kind."""
    if not isinstance(data, dict):
        raise ReportError(f"{source}: not an emobench report (expected a JSON object)")
    if data.get("schema") != SCHEMA:
        raise ReportError(f"{source}: not an emobench report (schema is {data.get('schema')!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError(f"{source}: report has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ReportError(
            f"{source}: report schema version {version} is newer than this emobench "
            f"understands ({SCHEMA_VERSION}); upgrade emobench"
        )
    if version < MIN_SCHEMA_VERSION:
        raise ReportError(
            f"{source}: report schema version {version} is not one this emobench reads "
            f"({MIN_SCHEMA_VERSION} to {SCHEMA_VERSION})"
        )
    kind = data.get("kind")
    if kind not in KINDS:
        raise ReportError(
            f"{source}: unknown report kind {kind!r}; expected one of: {', '.join(KINDS)}"
        )
    if kind == "finetune":
        if not isinstance(data.get("finetune"), dict):
            raise ReportError(f"{source}: a finetune report with no finetune results")
        return str(kind)
    key = "maxbatch" if kind == "maxbatch" else "results"
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        raise ReportError(f"{source}: a {kind} report with no {key}: nothing was measured")
    return str(kind)


def from_dict(data: Any, source: str = "report") -> Report:
    check_header(data, source)
    try:
        return _build(Report, {k: v for k, v in data.items() if k != "metrics"})
    except (TypeError, ValueError, KeyError) as exc:
        raise ReportError(f"{source}: malformed report ({exc})") from None
    except RecursionError:
        raise ReportError(f"{source}: malformed report (nested too deeply)") from None


def read_json(path: Path) -> Any:
    """A report file's JSON, from a regular file of at most MAX_REPORT_BYTES."""
    text = files.read_text(path, ReportError, "report file", MAX_REPORT_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ReportError(f"{path}: not a report (JSON nested too deeply)") from None


def load_header(path: Path) -> tuple[str, Any]:
    """Read and check a report file without rebuilding it: (kind, JSON data)."""
    data = read_json(path)
    return check_header(data, str(path)), data


def load(path: Path) -> Report:
    return from_dict(read_json(path), str(path))


@functools.cache
def _result_types() -> dict[str, Any]:
    """The measurement result classes the report's annotations name (their modules import
    torch, so they are looked up only when a report is rebuilt)."""
    from emobench.finetune_results import FinetuneSummary
    from emobench.measure.contention import Contention
    from emobench.measure.flops import ParamCounts
    from emobench.measure.limits import DeviceLimits
    from emobench.measure.maxbatch import LinearFit, Probe
    from emobench.measure.memory import PeakMemory
    from emobench.measure.nvml import MonitorResult
    from emobench.measure.timing import TimingResult
    from emobench.stats.summary import Stats

    return {
        c.__name__: c
        for c in (
            FinetuneSummary,
            Contention,
            ParamCounts,
            DeviceLimits,
            LinearFit,
            Probe,
            PeakMemory,
            MonitorResult,
            Stats,
            TimingResult,
        )
    }


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a (nested) dataclass value from JSON data, checking the types on the way."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} must be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp, localns=_result_types())
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{tp.__name__}.{f.name} is missing")
        return tp(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported type {tp!r}")

"""Reports: plain dataclasses, versioned JSON written atomically, and flat metric rows.

No rendering here (that is `render.py`), so baselines and scripts can load reports cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from emobench.errors import ReportError
from emobench.finetune_results import FinetuneSummary
from emobench.measure.contention import Contention
from emobench.measure.flops import ParamCounts
from emobench.measure.limits import DeviceLimits
from emobench.measure.maxbatch import LinearFit, Probe
from emobench.measure.memory import PeakMemory
from emobench.measure.nvml import MonitorResult
from emobench.measure.stats import Stats
from emobench.measure.timing import TimingResult

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
    finetune: FinetuneSummary | None = None  # kind "finetune": training, test scores, paired

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
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(report: Report, path: Path) -> None:
    try:
        write_atomic(path, to_json(report))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write report ({exc.strerror or exc})") from None


def from_dict(data: Any, source: str = "report") -> Report:
    if not isinstance(data, dict):
        raise ReportError(f"{source}: not an emobench report (expected a JSON object)")
    if data.get("schema") != SCHEMA:
        raise ReportError(f"{source}: not an emobench report (schema is {data.get('schema')!r})")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ReportError(f"{source}: report has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ReportError(
            f"{source}: report schema version {version} is newer than this emobench "
            f"understands ({SCHEMA_VERSION}); upgrade emobench"
        )
    try:
        return _build(Report, {k: v for k, v in data.items() if k != "metrics"})
    except (TypeError, ValueError, KeyError) as exc:
        raise ReportError(f"{source}: malformed report ({exc})") from None


def load(path: Path) -> Report:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read report ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    return from_dict(data, str(path))


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
        hints = typing.get_type_hints(tp)
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

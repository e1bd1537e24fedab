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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from emobench import files
from emobench.errors import ReportError

if TYPE_CHECKING:
    from emobench.measure.contention import Contention
    from emobench.measure.flops import ParamCounts
    from emobench.measure.limits import DeviceLimits
    from emobench.measure.maxbatch import LinearFit, Probe
    from emobench.measure.memory import PeakMemory
    from emobench.measure.nvml import MonitorResult
    from emobench.measure.stats import Stats
    from emobench.measure.timing import TimingResult

SCHEMA = "emobench.report"
SCHEMA_VERSION = 1
MIN_SCHEMA_VERSION = 1  # the oldest version this emobench reads
KINDS = ("compare", "run", "maxbatch")
MAX_REPORT_BYTES = 256 * 2**20  # ours are a few MB; anything larger is refused unread
UPSCALE = "upscale224"
DIRECT = "direct48"


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

    def result(self, backbone: str, pipeline: str) -> PipelineResult | None:
        for r in self.results:
            if r.backbone == backbone and r.pipeline == pipeline:
                return r
        return None

    @property
    def backbones(self) -> list[str]:
        return list(dict.fromkeys(r.backbone for r in self.results))


# -- metric rows -------------------------------------------------------------------------------

EXACT = "exact"  # identical on every machine
PORTABLE = "portable"  # only meaningful as a ratio between the two pipelines
MACHINE = "machine"  # absolute figure, tied to the machine that measured it


@dataclass(frozen=True)
class MetricDef:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str
    get: Callable[[PipelineResult], float | None]


@dataclass(frozen=True)
class MetricRow:
    backbone: str
    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str
    upscale224: float | None
    direct48: float | None
    ratio: float | None  # oriented so that > 1 means direct48 wins
    noisy: bool = False


def ratio(upscale: float | None, direct: float | None, higher_is_better: bool) -> float | None:
    """upscale224/direct48 if lower is better, the inverse otherwise; None if undefined."""
    if upscale is None or direct is None:
        return None
    num, den = (direct, upscale) if higher_is_better else (upscale, direct)
    if den == 0:
        return None
    return num / den


def _batch(items: list[BatchTiming], bs: int) -> BatchTiming | None:
    return next((b for b in items if b.batch_size == bs), None)


def _pre(result: PipelineResult, path: str) -> float | None:
    found = next((p for p in result.preprocess if p.path == path), None)
    return found.us_per_image.median if found else None


def _peak(attr: str) -> Callable[[PipelineResult], float | None]:
    def get(r: PipelineResult) -> float | None:
        return getattr(r.memory.peak, attr) if r.memory.peak is not None else None

    return get


def metric_defs(batch_sizes: list[int]) -> list[MetricDef]:
    defs = [
        MetricDef(
            "preprocess_per_image_pil_us",
            "preprocess, per-image PIL path",
            "us/image",
            False,
            PORTABLE,
            lambda r: _pre(r, "per_image_pil"),
        ),
        MetricDef(
            "preprocess_batched_tensor_us",
            "preprocess, batched tensor path",
            "us/image",
            False,
            PORTABLE,
            lambda r: _pre(r, "batched_tensor"),
        ),
        MetricDef(
            "latency_b1_median_ms",
            "latency b1, median",
            "ms",
            False,
            PORTABLE,
            lambda r: r.latency.stats.median if r.latency else None,
        ),
        MetricDef(
            "latency_b1_p90_ms",
            "latency b1, p90",
            "ms",
            False,
            MACHINE,
            lambda r: r.latency.stats.p90 if r.latency else None,
        ),
        MetricDef(
            "latency_b1_p99_ms",
            "latency b1, p99",
            "ms",
            False,
            MACHINE,
            lambda r: r.latency.stats.p99 if r.latency else None,
        ),
        MetricDef(
            "cold_start_ms",
            "first call (cold start), b1",
            "ms",
            False,
            MACHINE,
            lambda r: r.latency.cold_start_ms if r.latency else None,
        ),
    ]
    defs.append(
        MetricDef(
            "compile_s",
            "compile (first compiled call)",
            "s",
            False,
            MACHINE,
            lambda r: r.compile_s,
        )
    )
    for bs in batch_sizes:
        defs.append(_throughput_def(bs, "throughput", "throughput", "model only"))
        defs.append(_throughput_def(bs, "end_to_end", "end to end", "uint8 host batch -> logits"))
    for bs in batch_sizes:
        defs += _train_defs(bs)
    for bs in batch_sizes:
        defs += _transfer_defs(bs)
    defs += [
        MetricDef(
            "params_total", "parameters, total", "count", False, EXACT, lambda r: r.params.total
        ),
        MetricDef(
            "params_trainable",
            "parameters, trainable",
            "count",
            False,
            EXACT,
            lambda r: r.params.trainable,
        ),
        MetricDef(
            "params_unused",
            "parameters never used by forward",
            "count",
            False,
            EXACT,
            lambda r: r.params.unused,
        ),
        MetricDef(
            "flops_per_image", "FLOPs per image", "FLOP", False, EXACT, lambda r: r.flops_per_image
        ),
        MetricDef(
            "input_bytes_per_image",
            "model input per image",
            "bytes",
            False,
            EXACT,
            lambda r: r.memory.input_bytes_per_image,
        ),
        MetricDef(
            "weight_bytes",
            "weights + buffers",
            "bytes",
            False,
            EXACT,
            lambda r: r.memory.weight_bytes,
        ),
        MetricDef(
            "tensor_peak_bytes",
            "peak live tensors, inference batch",
            "bytes",
            False,
            PORTABLE,
            _peak("tensor_peak_bytes"),
        ),
        MetricDef(
            "peak_cpu_rss_growth_bytes",
            "peak RSS growth, inference batch",
            "bytes",
            False,
            MACHINE,
            _peak("cpu_peak_rss_growth_bytes"),
        ),
        MetricDef(
            "peak_cuda_allocated_bytes",
            "CUDA peak allocated, inference batch",
            "bytes",
            False,
            MACHINE,
            _peak("cuda_peak_allocated_bytes"),
        ),
        MetricDef(
            "peak_cuda_reserved_bytes",
            "CUDA peak reserved, inference batch",
            "bytes",
            False,
            MACHINE,
            _peak("cuda_peak_reserved_bytes"),
        ),
        MetricDef(
            "nvml_device_used_bytes",
            "NVML device memory used, after batch",
            "bytes",
            False,
            MACHINE,
            _peak("nvml_device_used_bytes"),
        ),
    ]
    return defs + _efficiency_defs()


def _train_defs(bs: int) -> list[MetricDef]:
    def pick(r: PipelineResult) -> TrainResult | None:
        return next((t for t in r.train if t.batch_size == bs), None)

    def peak(attr: str) -> Callable[[PipelineResult], float | None]:
        def get(r: PipelineResult) -> float | None:
            t = pick(r)
            return getattr(t.peak, attr) if t and t.peak else None

        return get

    return [
        MetricDef(
            f"train_b{bs}_images_per_s",
            f"train b{bs} (one SGD step)",
            "images/s",
            True,
            PORTABLE,
            lambda r: t.images_per_s if (t := pick(r)) else None,
        ),
        MetricDef(
            f"train_b{bs}_step_ms",
            f"train step b{bs}, median",
            "ms",
            False,
            MACHINE,
            lambda r: t.timing.stats.median if (t := pick(r)) else None,
        ),
        MetricDef(
            f"train_b{bs}_tensor_peak_bytes",
            f"train b{bs}, peak live tensors",
            "bytes",
            False,
            PORTABLE,
            peak("tensor_peak_bytes"),
        ),
        MetricDef(
            f"train_b{bs}_rss_growth_bytes",
            f"train b{bs}, peak RSS growth",
            "bytes",
            False,
            MACHINE,
            peak("cpu_peak_rss_growth_bytes"),
        ),
        MetricDef(
            f"train_b{bs}_cuda_peak_bytes",
            f"train b{bs}, CUDA peak allocated",
            "bytes",
            False,
            MACHINE,
            peak("cuda_peak_allocated_bytes"),
        ),
    ]


def _transfer_defs(bs: int) -> list[MetricDef]:
    def total(placement_up: str) -> Callable[[PipelineResult], float | None]:
        def get(r: PipelineResult) -> float | None:
            want = placement_up if r.pipeline == UPSCALE else "copy_uint8_48"
            found = next(
                (t for t in r.to_device if t.batch_size == bs and t.placement == want), None
            )
            return found.total_ms if found else None

        return get

    def moved(r: PipelineResult) -> float | None:
        want = "host_upscale_then_copy_f32" if r.pipeline == UPSCALE else "copy_uint8_48"
        found = next((t for t in r.to_device if t.batch_size == bs and t.placement == want), None)
        return found.bytes_moved if found else None

    return [
        MetricDef(
            f"transfer_b{bs}_host_upscale_ms",
            f"to device b{bs}: upscale on host, copy f32",
            "ms",
            False,
            MACHINE,
            total("host_upscale_then_copy_f32"),
        ),
        MetricDef(
            f"transfer_b{bs}_device_upscale_ms",
            f"to device b{bs}: copy uint8, upscale on device",
            "ms",
            False,
            MACHINE,
            total("copy_uint8_then_device_upscale"),
        ),
        MetricDef(
            f"transfer_b{bs}_bytes",
            f"host->device bytes b{bs}, natural input",
            "bytes",
            False,
            EXACT,
            moved,
        ),
    ]


def _efficiency_defs() -> list[MetricDef]:
    def eff(fn: Callable[[Efficiency], float | None]) -> Callable[[PipelineResult], float | None]:
        return lambda r: fn(r.efficiency) if r.efficiency else None

    def mon(attr: str) -> Callable[[PipelineResult], float | None]:
        return lambda r: getattr(r.gpu_monitor, attr) if r.gpu_monitor else None

    def joules_per_image(r: PipelineResult) -> float | None:
        if r.gpu_monitor is None or r.gpu_monitor.energy_joules is None or not r.throughput:
            return None
        best = max(r.throughput, key=lambda b: b.batch_size)
        t = best.timing
        calls = int(t.cold_start_ms is not None) + t.warmup_iters + t.stats.n
        images = calls * best.batch_size
        return r.gpu_monitor.energy_joules / images

    return [
        MetricDef(
            "achieved_flops_per_s",
            "achieved compute, best throughput",
            "FLOP/s",
            True,
            MACHINE,
            eff(lambda e: e.achieved_flops_per_s),
        ),
        MetricDef(
            "matmul_fraction",
            "of this device's measured matmul rate",
            "fraction",
            True,
            MACHINE,
            eff(lambda e: e.matmul_fraction),
        ),
        MetricDef(
            "preprocess_batched_copy_fraction",
            "preprocess batched, of copy bandwidth",
            "fraction",
            True,
            MACHINE,
            eff(lambda e: e.preprocess_copy_fraction.get("batched_tensor")),
        ),
        MetricDef(
            "preprocess_per_image_copy_fraction",
            "preprocess per-image, of copy bandwidth",
            "fraction",
            True,
            MACHINE,
            eff(lambda e: e.preprocess_copy_fraction.get("per_image_pil")),
        ),
        MetricDef(
            "nvml_device_peak_bytes",
            "NVML device memory, peak in loop",
            "bytes",
            False,
            MACHINE,
            mon("device_used_peak_bytes"),
        ),
        MetricDef(
            "nvml_process_peak_bytes",
            "NVML process memory, peak in loop",
            "bytes",
            False,
            MACHINE,
            mon("process_used_peak_bytes"),
        ),
        MetricDef(
            "nvml_process_mean_bytes",
            "NVML process memory, mean in loop",
            "bytes",
            False,
            MACHINE,
            mon("process_used_mean_bytes"),
        ),
        MetricDef(
            "energy_j_per_image",
            "GPU energy per image (NVML)",
            "J/image",
            False,
            MACHINE,
            joules_per_image,
        ),
    ]


def _throughput_def(bs: int, attr: str, label: str, what: str) -> MetricDef:
    def get(r: PipelineResult) -> float | None:
        found = _batch(getattr(r, attr), bs)
        return found.images_per_s if found else None

    return MetricDef(
        f"{attr}_b{bs}_images_per_s", f"{label} b{bs} ({what})", "images/s", True, PORTABLE, get
    )


def stats_for(r: PipelineResult | None, key: str) -> Stats | None:
    """The raw-sample statistics behind a timing metric, when the report has them."""
    if r is None:
        return None
    if key.startswith("latency_b1") and r.latency:
        return r.latency.stats
    for attr in ("throughput", "end_to_end", "train"):
        prefix = f"{attr}_b"
        if key.startswith(prefix) and key.endswith(("_images_per_s", "_step_ms")):
            bs = int(key[len(prefix) :].split("_")[0])
            found = next((b for b in getattr(r, attr) if b.batch_size == bs), None)
            return found.timing.stats if found else None
    for p in r.preprocess:
        if key == f"preprocess_{p.path}_us":
            return p.us_per_image
    return None


def _noisy(r: PipelineResult | None, key: str) -> bool:
    stats = stats_for(r, key)
    return bool(stats and stats.noisy)


def batch_sizes_of(report: Report) -> list[int]:
    sizes: dict[int, None] = {}
    for r in report.results:
        for items in (r.throughput, r.end_to_end, r.train, r.to_device):
            for b in items:
                sizes[b.batch_size] = None
    return sorted(sizes)


def metric_rows(report: Report) -> list[MetricRow]:
    """One row per backbone and metric: both pipelines' values and their ratio."""
    rows: list[MetricRow] = []
    defs = metric_defs(batch_sizes_of(report))
    for backbone in report.backbones:
        up, dn = report.result(backbone, UPSCALE), report.result(backbone, DIRECT)
        for d in defs:
            u = d.get(up) if up else None
            v = d.get(dn) if dn else None
            if u is None and v is None:
                continue
            rows.append(
                MetricRow(
                    backbone=backbone,
                    key=d.key,
                    label=d.label,
                    unit=d.unit,
                    higher_is_better=d.higher_is_better,
                    kind=d.kind,
                    upscale224=u,
                    direct48=v,
                    ratio=ratio(u, v, d.higher_is_better),
                    noisy=_noisy(up, d.key) or _noisy(dn, d.key),
                )
            )
    return rows


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
    from emobench.measure.contention import Contention
    from emobench.measure.flops import ParamCounts
    from emobench.measure.limits import DeviceLimits
    from emobench.measure.maxbatch import LinearFit, Probe
    from emobench.measure.memory import PeakMemory
    from emobench.measure.nvml import MonitorResult
    from emobench.measure.stats import Stats
    from emobench.measure.timing import TimingResult

    return {
        c.__name__: c
        for c in (
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

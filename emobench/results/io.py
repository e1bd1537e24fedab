"""Reports as versioned JSON: written atomically, read back with the header checked first,
every field's type checked on the way in, then every number checked against its field's domain
(DOMAINS: finite always; a latency, size or rate > 0, a count >= 0, an accuracy in [0, 1], ...).
A report that fails names the field's JSON path. No torch: every result type is a plain
dataclass."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emobench import files
from emobench.errors import ReportError
from emobench.results.finetune import (
    EpochMetrics,
    FinetuneRun,
    FinetuneSummary,
    PairedComparison,
    SeedSpread,
    TestScore,
)
from emobench.results.measurements import (
    Contention,
    Deployment,
    DeviceLimits,
    FreshStart,
    KernelRate,
    LinearFit,
    MonitorResult,
    ParamCounts,
    Parity,
    PeakMemory,
    Probe,
    StepShare,
    TimingResult,
)
from emobench.results.metrics import metric_rows
from emobench.results.schema import (
    KINDS,
    MAX_REPORT_BYTES,
    MIN_SCHEMA_VERSION,
    SCHEMA,
    SCHEMA_VERSION,
    BatchTiming,
    Efficiency,
    MaxBatchResult,
    MemoryResult,
    PairedRatio,
    PipelineResult,
    PreprocessResult,
    Report,
    RunBudget,
    TrainResult,
    TransferResult,
)
from emobench.results.stream import (
    LatencyPercentiles,
    LoadgenRun,
    StreamResult,
    StreamSummary,
)
from emobench.stats.summary import Stats


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
        text = to_json(report)
    except ValueError as exc:  # a NaN or infinity in memory: JSON has no such numbers
        raise ReportError(f"{path}: cannot write report ({exc})") from None
    try:
        write_atomic(path, text)
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
    if kind == "stream":
        if not isinstance(data.get("stream"), dict):
            raise ReportError(f"{source}: a stream report with no stream results")
        return str(kind)
    key = "maxbatch" if kind == "maxbatch" else "results"
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        raise ReportError(f"{source}: a {kind} report with no {key}: nothing was measured")
    return str(kind)


def from_dict(data: Any, source: str = "report") -> Report:
    """Rebuild a report from JSON data: the header, every field's type, then every number
    against its field's domain and every free-form number (config, environment) finite."""
    check_header(data, source)
    try:
        report = _build(Report, {k: v for k, v in data.items() if k != "metrics"})
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ReportError(f"{source}: malformed report ({exc})") from None
    except RecursionError:
        raise ReportError(f"{source}: malformed report (nested too deeply)") from None
    problem = check_domains(report) or _non_finite(data)
    if problem:
        raise ReportError(f"{source}: {problem}")
    return report


def read_json(path: Path) -> Any:
    """A report file's JSON, from a regular file of at most MAX_REPORT_BYTES."""
    text = files.read_text(path, ReportError, "report file", MAX_REPORT_BYTES)
    try:
        return json.loads(text)
    except RecursionError:
        raise ReportError(f"{path}: not a report (JSON nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer longer than Python converts
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def load_header(path: Path) -> tuple[str, Any]:
    """Read and check a report file without rebuilding it: (kind, JSON data)."""
    data = read_json(path)
    return check_header(data, str(path)), data


def load(path: Path) -> Report:
    return from_dict(read_json(path), str(path))


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
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is not Any:  # dict[str, float], dict[str, list[float]]
            return {k: _build(args[1], v) for k, v in value.items()}
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:  # kept as it is: check_domains refuses it, naming the field
            return value
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported type {tp!r}")


# -- the domain of every number in a report ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Domain:
    """What a number may be: always finite (a JSON NaN or Infinity never passes), and `test`."""

    text: str  # "> 0": the message says "must be a finite number > 0"
    test: Callable[[float], bool]

    def holds(self, value: float) -> bool:
        """False for an integer too large for a float (10**400): no field may hold one."""
        try:
            return math.isfinite(value) and self.test(value)
        except OverflowError:
            return False


ANY = Domain("", lambda v: True)  # a fitted intercept, a slope, a difference
POSITIVE = Domain("> 0", lambda v: v > 0)  # latencies, rates, sizes that cannot be empty
NON_NEGATIVE = Domain(">= 0", lambda v: v >= 0)  # counts and sizes that may be 0
AT_LEAST_1 = Domain(">= 1", lambda v: v >= 1)  # batch sizes, sample counts, image sizes
FRACTION = Domain("in [0, 1]", lambda v: 0 <= v <= 1)  # accuracies, probabilities
OPEN_FRACTION = Domain("in (0, 1)", lambda v: 0 < v < 1)  # a false-alarm rate
MARGIN = Domain("in [0, 1)", lambda v: 0 <= v < 1)
POINTS = Domain("in [-100, 100]", lambda v: -100 <= v <= 100)  # percentage points

# Every int or float field of every dataclass a report holds, by class and field: the domain of
# the number (for a list or dict field, of each item). tests/results/test_io.py checks that no
# numeric field is missing here, so a new field needs a decision, not a guess from its name.
DOMAINS: dict[type, dict[str, Domain]] = {
    Report: {
        "wall_time_s": NON_NEGATIVE,
        "schema_version": ANY,  # checked with the header
        "thresholds": NON_NEGATIVE,  # relative tolerances; a --rule may be 0%
        "run_ratios": POSITIVE,  # upscale224/direct48 ratios, one per run
        "gate_alpha": OPEN_FRACTION,
    },
    PipelineResult: {
        "input_size": AT_LEAST_1,
        "feature_map": AT_LEAST_1,
        "flops_per_image": NON_NEGATIVE,  # only matmul/conv-like ops count: a plugin may have 0
        "compile_s": POSITIVE,
        "compile_s_per_batch": POSITIVE,
        "threads": AT_LEAST_1,
    },
    Deployment: {"opset": AT_LEAST_1, "file_bytes": POSITIVE, "export_s": NON_NEGATIVE},
    Parity: {
        "batch_size": AT_LEAST_1,
        "max_abs_diff": NON_NEGATIVE,
        "logit_scale": POSITIVE,
        "top1_agreement": FRACTION,
        "tolerance": NON_NEGATIVE,
    },
    FreshStart: {
        "session_create_ms": POSITIVE,
        "first_infer_ms": POSITIVE,
        "peak_rss_bytes": POSITIVE,
        "base_rss_bytes": POSITIVE,
    },
    ParamCounts: {"total": NON_NEGATIVE, "trainable": NON_NEGATIVE, "unused": NON_NEGATIVE},
    TimingResult: {
        "cold_start_ms": POSITIVE,
        "warmup_iters": NON_NEGATIVE,
        "elapsed_s": NON_NEGATIVE,
        "block_calls": AT_LEAST_1,
    },
    Stats: {  # timing samples: ms per call, us per image
        "n": AT_LEAST_1,
        "median": POSITIVE,  # what tables, ratios and log plots show: never 0
        "mean": POSITIVE,
        "stdev": NON_NEGATIVE,
        # one sample of a sub-microsecond call may read 0 on a coarse clock (CUDA events)
        "min": NON_NEGATIVE,
        "p90": POSITIVE,
        "p99": POSITIVE,
        "iqr": NON_NEGATIVE,
        "samples": NON_NEGATIVE,
        "median_ci_low": NON_NEGATIVE,
        "median_ci_high": POSITIVE,
    },
    BatchTiming: {"batch_size": AT_LEAST_1, "images_per_s": POSITIVE},
    PreprocessResult: {"images": AT_LEAST_1, "block_calls": AT_LEAST_1},
    MemoryResult: {
        "input_bytes_per_image": POSITIVE,
        "weight_bytes": NON_NEGATIVE,
        "peak_batch_size": AT_LEAST_1,
    },
    PeakMemory: {  # peaks and growths: 0 when nothing was allocated
        "tensor_peak_bytes": NON_NEGATIVE,
        "cpu_peak_rss_growth_bytes": NON_NEGATIVE,
        "cuda_peak_allocated_bytes": NON_NEGATIVE,
        "cuda_peak_reserved_bytes": NON_NEGATIVE,
        "nvml_device_used_bytes": NON_NEGATIVE,
        "cuda_allocated_before_bytes": NON_NEGATIVE,
        "cuda_own_resident_bytes": NON_NEGATIVE,
    },
    TrainResult: {"batch_size": AT_LEAST_1, "images_per_s": POSITIVE},
    TransferResult: {
        "batch_size": AT_LEAST_1,
        "bytes_moved": POSITIVE,
        "copy_ms": POSITIVE,
        "total_ms": POSITIVE,
    },
    MonitorResult: {
        "samples": NON_NEGATIVE,
        "interval_s": POSITIVE,
        "device_used_peak_bytes": NON_NEGATIVE,
        "device_used_mean_bytes": NON_NEGATIVE,
        "process_used_peak_bytes": NON_NEGATIVE,
        "process_used_mean_bytes": NON_NEGATIVE,
        "energy_joules": NON_NEGATIVE,
        "images": NON_NEGATIVE,
        "window_s": NON_NEGATIVE,
        "calls": NON_NEGATIVE,
        "energy_updates": NON_NEGATIVE,
        "energy_update_interval_s": POSITIVE,
    },
    Efficiency: {
        "batch_size": AT_LEAST_1,
        "achieved_flops_per_s": NON_NEGATIVE,
        "matmul_fraction": NON_NEGATIVE,  # may exceed 1: a model beating every kernel timed
        "preprocess_bytes_per_s": POSITIVE,
        "preprocess_copy_fraction": NON_NEGATIVE,
    },
    MaxBatchResult: {
        "budget_bytes": POSITIVE,
        "max_batch": NON_NEGATIVE,  # 0 when batch 1 does not fit
        "safe_batch": NON_NEGATIVE,
        "margin": MARGIN,
        "peak_bytes_at_max": NON_NEGATIVE,
        "bytes_per_extra_image": ANY,  # a fitted slope: noise can make it negative
        "predicted_peak_bytes": ANY,  # from the fit
        "fit_error": ANY,  # (measured - predicted) / measured
        "child_base_bytes": NON_NEGATIVE,
        "reserved_bytes_at_max": NON_NEGATIVE,
        "non_allocator_bytes": NON_NEGATIVE,
        "non_allocator_bytes_at_max": NON_NEGATIVE,
        "confirm_margin_bytes": NON_NEGATIVE,  # what the budget had left at the confirmed max
    },
    Probe: {
        "batch_size": NON_NEGATIVE,  # 0: the CPU search's child with the model built, no batch
        "peak_bytes": NON_NEGATIVE,
        "seconds": NON_NEGATIVE,
        "reserved_bytes": NON_NEGATIVE,
    },
    LinearFit: {"fixed_bytes": ANY, "per_image_bytes": ANY, "points": NON_NEGATIVE},
    DeviceLimits: {
        "matmul_flops_per_s": POSITIVE,
        "matmul_n": AT_LEAST_1,
        "copy_bytes_per_s": POSITIVE,
        "copy_bytes": AT_LEAST_1,
        "elapsed_s": NON_NEGATIVE,
        "host_copy_bytes_per_s": POSITIVE,
        "h2d_bytes_per_s": POSITIVE,
        "ceiling_flops_per_s": POSITIVE,
        "peak_flops_per_s": POSITIVE,
    },
    KernelRate: {"flops_per_s": POSITIVE},
    Contention: {  # differences of CPU times are clamped at 0 when they are taken
        "wall_s": NON_NEGATIVE,
        "usable_cores": AT_LEAST_1,
        "own_cpu_s": NON_NEGATIVE,
        "others_cpu_s": NON_NEGATIVE,
        "other_cpu_fraction": NON_NEGATIVE,
        "load_avg_1m": NON_NEGATIVE,
        "cpu_freq_mhz_min": NON_NEGATIVE,
        "cpu_freq_mhz_max": NON_NEGATIVE,
        "gpu_other_processes": NON_NEGATIVE,
    },
    StepShare: {"wall_s": NON_NEGATIVE, "other_cpu_fraction": NON_NEGATIVE},
    RunBudget: {"time_budget_s": POSITIVE, "spent_s": NON_NEGATIVE},
    PairedRatio: {
        "rounds": AT_LEAST_1,
        "ratio": POSITIVE,
        "ci_low": POSITIVE,
        "ci_high": POSITIVE,
        "ratios": POSITIVE,
    },
    FinetuneSummary: {"test_labels": NON_NEGATIVE},
    StreamSummary: {
        "fps": POSITIVE,
        "deadline_ms": POSITIVE,
        "faces_per_frame": AT_LEAST_1,
        "max_batch": AT_LEAST_1,
        "batch_window_ms": NON_NEGATIVE,
    },
    StreamResult: {"max_streams": NON_NEGATIVE, "search_resolution": AT_LEAST_1},
    LoadgenRun: {
        "queries": NON_NEGATIVE,
        "samples": NON_NEGATIVE,
        "duration_s": NON_NEGATIVE,
        "achieved_qps": NON_NEGATIVE,
        "target_qps": POSITIVE,
        "target_latency_ms": POSITIVE,
        "target_percentile": OPEN_FRACTION,
        "streams": NON_NEGATIVE,
        "batch_sizes": NON_NEGATIVE,
        "late": NON_NEGATIVE,
        "early_stopping_latency_ms": NON_NEGATIVE,
    },
    LatencyPercentiles: {
        "mean": NON_NEGATIVE,
        "p50": NON_NEGATIVE,
        "p90": NON_NEGATIVE,
        "p99": NON_NEGATIVE,
        "max": NON_NEGATIVE,
    },
    FinetuneRun: {
        "seed": NON_NEGATIVE,
        "input_size": AT_LEAST_1,
        "params_total": NON_NEGATIVE,
        "params_trainable": NON_NEGATIVE,
        "best_epoch": NON_NEGATIVE,
        "best_val_accuracy": FRACTION,
        "target_accuracy": FRACTION,
        "time_to_target_s": NON_NEGATIVE,
        "epoch_to_target": AT_LEAST_1,
        "resumed_from_epoch": NON_NEGATIVE,
    },
    EpochMetrics: {
        "epoch": AT_LEAST_1,
        "train_loss": NON_NEGATIVE,
        "val_accuracy": FRACTION,
        "val_macro_f1": FRACTION,
        "lr": NON_NEGATIVE,
        "data_s": NON_NEGATIVE,
        "preprocess_s": NON_NEGATIVE,
        "step_s": NON_NEGATIVE,
        "train_s": POSITIVE,
        "eval_s": NON_NEGATIVE,
        "images_per_s": POSITIVE,
    },
    TestScore: {
        "checkpoint_epoch": NON_NEGATIVE,
        "images": AT_LEAST_1,
        "accuracy": FRACTION,
        "macro_f1": FRACTION,
        "precision": FRACTION,
        "recall": FRACTION,
        "confusion": NON_NEGATIVE,
        "latency_b1_ms": POSITIVE,
        "predictions": NON_NEGATIVE,
    },
    PairedComparison: {
        "seed": NON_NEGATIVE,
        "images": AT_LEAST_1,
        "accuracy_diff_points": POINTS,  # direct48 - upscale224: either sign
        "ci_low_points": POINTS,
        "ci_high_points": POINTS,
        "only_upscale_right": NON_NEGATIVE,
        "only_direct_right": NON_NEGATIVE,
        "mcnemar_p": FRACTION,
    },
    SeedSpread: {
        "seeds": AT_LEAST_1,
        "accuracy_mean": FRACTION,
        "accuracy_std": NON_NEGATIVE,
        "macro_f1_mean": FRACTION,
        "macro_f1_std": NON_NEGATIVE,
        "train_s_per_epoch_mean": POSITIVE,
    },
}
# Lists the readers index or summarise, so an empty one is a broken report, not a small one.
NON_EMPTY: dict[type, tuple[str, ...]] = {
    FinetuneSummary: ("runs",),  # one run per pipeline and seed
    FinetuneRun: ("epochs",),  # time per epoch is their median
}


def _describe(domain: Domain, value: object) -> str:
    kind = "an integer" if isinstance(value, int) else "a finite number"
    if isinstance(value, int) and value.bit_length() > 1024:  # beyond every float
        got = f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return f"must be a finite number {domain.text}".rstrip() + f", got {got}"
    return f"must be {kind} {domain.text}".rstrip() + f", got {value!r}"


# Fields of one object that must not decrease in this order, where present (None is skipped):
# an interval holds its point estimate, a low end is not above its high end. A tolerance of
# ORDER_TOLERANCE (relative) allows for rounding in the JSON.
ORDERED: dict[type, tuple[tuple[str, ...], ...]] = {
    Stats: (("median_ci_low", "median", "median_ci_high"), ("min", "median", "p90", "p99")),
    PairedRatio: (("ci_low", "ratio", "ci_high"),),
    # a bootstrap percentile interval need not hold its point estimate: only low <= high
    PairedComparison: (("ci_low_points", "ci_high_points"),),
    Contention: (("cpu_freq_mhz_min", "cpu_freq_mhz_max"),),
    MaxBatchResult: (("safe_batch", "max_batch"),),
}
ORDER_TOLERANCE = 1e-9


def _order_problem(obj: Any, path: str) -> str | None:
    """The first pair of ORDERED fields of `obj` out of order, naming both fields."""
    for chain in ORDERED.get(type(obj), ()):
        present = [(name, getattr(obj, name)) for name in chain if getattr(obj, name) is not None]
        for (a, low), (b, high) in itertools.pairwise(present):
            if low > high + ORDER_TOLERANCE * max(abs(low), abs(high)):
                where = f"{path}." if path else ""
                return f"{where}{a} ({low!r}) must not be above {where}{b} ({high!r})"
    return None


def _number_problem(domain: Domain, value: Any, path: str) -> str | None:
    """The first number under `value` (a number, or a list/dict of them) outside `domain`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return None if domain.holds(value) else f"{path} {_describe(domain, value)}"
    if isinstance(value, list):
        items: Any = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{path}[{json.dumps(k)}]", v) for k, v in value.items())
    else:
        return None
    for where, item in items:
        found = _number_problem(domain, item, where)
        if found:
            return found
    return None


def check_domains(obj: Any, path: str = "") -> str | None:
    """The first number of a rebuilt report outside its field's domain (see DOMAINS), as
    'results[0].latency.stats.median must be a finite number > 0, got -0.2'; None if all hold."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found = check_domains(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        return None
    domains = DOMAINS.get(type(obj), {})
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{path}.{f.name}" if path else f.name
        if f.name in NON_EMPTY.get(type(obj), ()) and not value:
            return f"{where} must not be empty"
        if f.name in domains:
            found = _number_problem(domains[f.name], value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found = _number_problem(ANY, value, where)  # no domain recorded: finite at least
        else:
            found = check_domains(value, where)
        if found:
            return found
    return _order_problem(obj, path)


def _non_finite(data: Any) -> str | None:
    """The first NaN or infinity anywhere in JSON data (Python's json reads NaN and Infinity),
    free-form parts (config, environment) included, as 'config.min_time_s must be a finite
    number, got nan'. Iterative: the depth of the data is whatever the file had."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{path or 'the report'} must be a finite number, got {value!r}"
        if isinstance(value, dict):
            for k, v in reversed(list(value.items())):
                key = k if isinstance(k, str) and k.isidentifier() else json.dumps(k)
                where = (f"{path}.{key}" if path else key) if k == key else f"{path}[{key}]"
                stack.append((where, v))
        elif isinstance(value, list):
            stack += [(f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value)))]
    return None

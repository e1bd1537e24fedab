"""Run settings as frozen dataclasses; suite files (configs/*.toml) load into the same shape."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emobench.errors import DeviceUnavailable, UsageError

DEFAULT_BACKBONE = "vgg16"
DEFAULT_BATCH_SIZES = (16,)
DEFAULT_PREPROCESS_IMAGES = 64
DEFAULT_WARMUP_ITERS = 1
DEFAULT_MIN_ITERS = 3
DEFAULT_MIN_TIME_S = 0.0
DEFAULT_MAX_TIME_S = 2.0  # per measurement
DEFAULT_TARGET_CI = 0.02  # stop a loop when the median's 95% interval is within +-2%
DEFAULT_LIMITS_TIME_S = 2.0  # matmul rate and copy bandwidth together
# --quick: fewer, shorter loops; the ratios stay within a few percent of the default run's
QUICK = {
    "warmup_iters": 1,
    "min_iters": 1,
    "max_time_s": 0.5,
    "target_ci": 0.05,
    "limits_time_s": 0.5,
}
DEFAULT_NUM_CLASSES = 7
ALL_PIPELINES = ("upscale224", "direct48")
MEASUREMENTS = (
    "preprocess",
    "latency",
    "throughput",
    "end_to_end",
    "memory",
    "flops",
    "transfer",
    "efficiency",
)
PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
RUN_MODES = ("infer", "train", "both")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a compare/run measures; recorded in full in the report."""

    backbones: tuple[str, ...] = (DEFAULT_BACKBONE,)
    pipelines: tuple[str, ...] = ALL_PIPELINES
    device: str = "auto"
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    warmup_iters: int = DEFAULT_WARMUP_ITERS
    min_iters: int = DEFAULT_MIN_ITERS
    min_time_s: float = DEFAULT_MIN_TIME_S
    preprocess_images: int = DEFAULT_PREPROCESS_IMAGES
    measurements: tuple[str, ...] = MEASUREMENTS
    pretrained: bool = False
    data: str | None = None
    seed: int = 0
    num_classes: int = DEFAULT_NUM_CLASSES
    mode: str = "infer"  # infer, train or both
    precision: str = "fp32"  # autocast dtype for fp16/bf16
    channels_last: bool = False
    compile: str = "none"  # torch.compile mode, or none
    cudnn_benchmark: bool | None = None  # None: leave torch's setting alone
    tf32: bool | None = None  # None: leave torch's setting alone
    threads: int | None = None  # torch.set_num_threads; None: torch's default
    max_time_s: float = DEFAULT_MAX_TIME_S  # cap of one timed loop
    target_ci: float = DEFAULT_TARGET_CI  # relative half-width of the median's 95% interval
    limits_time_s: float = DEFAULT_LIMITS_TIME_S
    time_budget_s: float | None = None  # the whole run; measurements share what is left
    quick: bool = False  # the QUICK preset was applied
    allow_emulated: bool = False  # run a precision this device only emulates
    name: str = field(default="compare")

    def validate(self) -> RunConfig:
        """Raise UsageError on the first invalid setting; return self for chaining."""
        from emobench.models import PIPELINES, check_backbone

        if not self.backbones:
            raise UsageError("at least one backbone is needed")
        for b in self.backbones:
            check_backbone(b, num_classes=self.num_classes)  # registered, or a working plugin
        if not self.pipelines:
            raise UsageError("at least one pipeline is needed")
        for p in self.pipelines:
            if p not in PIPELINES:
                raise UsageError(f"unknown pipeline {p!r}; choose one of: {', '.join(PIPELINES)}")
        for m in self.measurements:
            if m not in MEASUREMENTS:
                raise UsageError(
                    f"unknown measurement {m!r}; choose from: {', '.join(MEASUREMENTS)}"
                )
        if not self.batch_sizes:
            raise UsageError("at least one batch size is needed")
        for bs in self.batch_sizes:
            if bs < 1:
                raise UsageError(f"batch size must be a positive integer, got {bs}")
        _positive("min_iters", self.min_iters)
        _positive("preprocess_images", self.preprocess_images)
        _positive("num_classes", self.num_classes)
        if self.warmup_iters < 0:
            raise UsageError(f"warmup_iters must be >= 0, got {self.warmup_iters}")
        _finite_at_least("min_time_s", self.min_time_s, 0.0)
        _finite_at_least("max_time_s", self.max_time_s, 0.0, strict=True)
        _finite_at_least("target_ci", self.target_ci, 0.0)
        _finite_at_least("limits_time_s", self.limits_time_s, 0.0, strict=True)
        if self.time_budget_s is not None:
            _finite_at_least("time_budget_s", self.time_budget_s, 0.0, strict=True)
        if self.min_time_s > self.max_time_s:
            raise UsageError(
                f"min_time_s ({self.min_time_s}) is larger than max_time_s ({self.max_time_s})"
            )
        _choice("precision", self.precision, PRECISIONS)
        _choice("compile", self.compile, COMPILE_MODES)
        _choice("mode", self.mode, RUN_MODES)
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        parse_device_spec(self.device)
        return self

    @property
    def modes(self) -> tuple[str, ...]:
        return ("infer", "train") if self.mode == "both" else (self.mode,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite_at_least(name: str, value: float, low: float, strict: bool = False) -> None:
    if not math.isfinite(value) or value < low or (strict and value == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise UsageError(f"{name} must be a finite number {bound}, got {value}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def check_device_options(config: RunConfig, device: torch.device) -> None:
    """Option combinations this device cannot run: UsageError before any model is built."""
    if config.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    why = emulated_precision(config.precision, device)
    if why and not config.allow_emulated:
        raise UsageError(
            f"--precision {config.precision}: {why}, so it would be emulated (often 10-1000x "
            "slower than fp32, and not what this hardware would run in production). Use "
            "--precision fp32, or pass --allow-emulated to measure it anyway"
        )
    if config.compile != "none":
        reason = compile_unavailable(device)
        if reason:
            raise UsageError(f"--compile {config.compile}: {reason}")
    if device.type != "cuda" and (config.cudnn_benchmark or config.tf32):
        raise UsageError("--cudnn-benchmark and --tf32 apply to CUDA devices only")


CUDA_NATIVE = {"bf16": (8, 0), "fp16": (5, 3)}  # compute capability with native arithmetic


def _cpu_bf16_native() -> bool:
    """oneDNN's own check: bf16 kernels for this CPU (AVX-512 core / AVX512_BF16 / AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def emulated_precision(precision: str, device: torch.device) -> str | None:
    """Why `device` would only emulate `precision`, or None when it runs it natively."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        needed = CUDA_NATIVE[precision]
        have = torch.cuda.get_device_capability(device)
        if tuple(have) < needed:
            name = torch.cuda.get_device_name(device)
            return (
                f"{name} is sm_{have[0]}{have[1]}; native {precision} needs "
                f"sm_{needed[0]}{needed[1]} or newer"
            )
        return None
    if precision == "bf16" and not _cpu_bf16_native():
        capability = torch.backends.cpu.get_cpu_capability()
        return f"this CPU has no native bf16 (torch dispatches {capability}; oneDNN: no bf16)"
    return None


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None when it can."""
    import importlib.util
    import shutil

    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile is not supported on this Python/platform"
    except Exception as exc:  # pragma: no cover - broken torch install
        return f"torch.compile is unavailable ({exc})"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile on CUDA needs triton, which is not installed"
    if device.type == "cpu" and not (
        shutil.which("c++") or shutil.which("g++") or shutil.which("cc")
    ):
        return "torch.compile on CPU needs a C++ compiler (g++), none found on PATH"
    return None


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


def parse_device_spec(spec: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (kind, index); UsageError for anything else."""
    if spec in ("auto", "cpu", "cuda"):
        return spec, None
    kind, _, index = spec.partition(":")
    if kind == "cuda" and index.isdigit():
        return "cuda", int(index)
    raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def resolve_device(spec: str) -> torch.device:
    """The torch device for a spec; DeviceUnavailable when CUDA or that GPU is missing."""
    kind, index = parse_device_spec(spec)
    if kind == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"--device {spec}: CUDA is not available here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    index = index or 0
    if index >= count:
        raise DeviceUnavailable(f"--device {spec}: only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


# -- suite files -------------------------------------------------------------------------------


def load_suite(path: Path) -> RunConfig:
    """Read a suite file: a [suite] table whose keys are RunConfig fields.

    Unknown keys and wrong types are UsageErrors naming the file, the key and what was expected.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read suite file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from None
    unknown_tables = set(data) - {"suite"}
    if unknown_tables:
        raise UsageError(f"{path}: unknown key {sorted(unknown_tables)[0]!r}; expected [suite]")
    table = data.get("suite")
    if not isinstance(table, dict):
        raise UsageError(f"{path}: missing [suite] table")
    kwargs: dict[str, Any] = {"name": path.stem}
    for key, value in table.items():
        kwargs[key] = _coerce(path, key, value)
    try:
        return RunConfig(**kwargs).validate()
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


_EXPECTED: dict[str, str] = {
    "name": "a string",
    "backbones": "a list of strings",
    "pipelines": "a list of strings",
    "measurements": "a list of strings",
    "device": "a string",
    "batch_sizes": "a list of integers",
    "warmup_iters": "an integer",
    "min_iters": "an integer",
    "preprocess_images": "an integer",
    "seed": "an integer",
    "num_classes": "an integer",
    "min_time_s": "a number",
    "pretrained": "a boolean",
    "mode": "a string",
    "precision": "a string",
    "channels_last": "a boolean",
    "compile": "a string",
    "cudnn_benchmark": "a boolean",
    "tf32": "a boolean",
    "threads": "an integer",
    "max_time_s": "a number",
    "target_ci": "a number",
    "limits_time_s": "a number",
    "time_budget_s": "a number",
    "allow_emulated": "a boolean",
    "data": "a string (path)",
}


def _coerce(path: Path, key: str, value: Any) -> Any:
    expected = _EXPECTED.get(key)
    if expected is None:
        raise UsageError(
            f"{path}: unknown key {key!r} in [suite]; known keys: {', '.join(sorted(_EXPECTED))}"
        )
    ok: bool
    if expected.startswith("a list of strings"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif expected == "a list of integers":
        ok = isinstance(value, list) and all(_is_int(v) for v in value)
        value = tuple(value) if ok else value
    elif expected == "an integer":
        ok = _is_int(value)
    elif expected == "a number":
        ok = (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected == "a boolean":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UsageError(f"{path}: key {key!r} must be {expected}, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""Run settings as frozen dataclasses; suite files (configs/*.toml) load into the same shape."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emobench.errors import DeviceUnavailable, UsageError

DEFAULT_BACKBONE = "vgg16"
DEFAULT_BATCH_SIZES = (16,)
DEFAULT_PREPROCESS_IMAGES = 64
DEFAULT_WARMUP_ITERS = 2
DEFAULT_MIN_ITERS = 5
DEFAULT_MIN_TIME_S = 1.0
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
    name: str = field(default="compare")

    def validate(self) -> RunConfig:
        """Raise UsageError on the first invalid setting; return self for chaining."""
        from emobench.models import BACKBONES, PIPELINES

        if not self.backbones:
            raise UsageError("at least one backbone is needed")
        for b in self.backbones:
            if b not in BACKBONES:
                raise UsageError(
                    f"unknown backbone {b!r}; choose one of: {', '.join(sorted(BACKBONES))}"
                )
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
        if self.min_time_s < 0:
            raise UsageError(f"min_time_s must be >= 0, got {self.min_time_s}")
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


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def check_device_options(config: RunConfig, device: torch.device) -> None:
    """Option combinations this device cannot run: UsageError before any model is built."""
    if config.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    if config.compile != "none":
        reason = compile_unavailable(device)
        if reason:
            raise UsageError(f"--compile {config.compile}: {reason}")
    if device.type != "cuda" and (config.cudnn_benchmark or config.tf32):
        raise UsageError("--cudnn-benchmark and --tf32 apply to CUDA devices only")


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

"""Run settings as frozen dataclasses; suite files (configs/*.toml) load into the same shape."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.device import check_cuda_only_options, cuda_total_bytes, parse_device_spec
from emobench.errors import UsageError
from emobench.names import (
    COMPILE_MODES,
    DEFAULT_NUM_CLASSES,
    INPUT_SIZES,
    ORT_RUNTIME,
    PIPELINE_NAMES,
    PLUGIN_GROUP,
    PRECISIONS,
    QUANTIZE_MODES,
    RUN_MODES,
    RUNTIMES,
    SOURCE_SIZE,
    TORCH_RUNTIME,
    variant_label,
)

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: options are validated (and a usage error
# answered) without the ~4 s and ~800 MB it takes to import torch.

DEFAULT_BACKBONE = "vgg16"
DEFAULT_BATCH_SIZES = (16,)
DEFAULT_PREPROCESS_IMAGES = 64
DEFAULT_WARMUP_ITERS = 1
DEFAULT_MIN_ITERS = 3
DEFAULT_MIN_TIME_S = 0.0
DEFAULT_MAX_TIME_S = 2.0  # per measurement
DEFAULT_TARGET_CI = 0.02  # stop a loop when the median's 95% interval is within +-2%
DEFAULT_LIMITS_TIME_S = 2.0  # the compute ceiling (matmuls, 3x3 convs) and copy bandwidth
# --quick: fewer, shorter loops; the ratios stay within a few percent of the default run's
QUICK = {
    "warmup_iters": 1,
    "min_iters": 1,
    "max_time_s": 0.5,
    "target_ci": 0.05,
    "limits_time_s": 0.5,
}
ALL_PIPELINES = PIPELINE_NAMES
# the registry's names, here without importing it (torch); a test keeps the two in step
BACKBONE_NAMES = (
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
)
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


@dataclass(frozen=True)
class Variant:
    """One way of running both pipelines that a report measures side by side: a runtime
    (torch, or the ONNX file in ONNX Runtime), ONNX Runtime's int8 file, and a --threads
    sweep's thread count (None: the run's threads)."""

    runtime: str = TORCH_RUNTIME
    quantize: str | None = None
    threads: int | None = None

    @property
    def label(self) -> str:
        return variant_label(self.runtime, self.quantize, self.threads)


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
    paired: bool = True  # headline timings in interleaved rounds of both pipelines
    name: str = field(default="compare")
    runtimes: tuple[str, ...] = (TORCH_RUNTIME,)  # side by side in one report, in this order
    quantize: str | None = None  # "int8": ONNX Runtime's int8 file measured beside its fp32 one
    thread_counts: tuple[int, ...] = ()  # a --threads sweep (2+ values); () : `threads` alone

    def __post_init__(self) -> None:
        """One thread count is no sweep: it is `threads`. A sweep's pools are sized for its
        largest count, which is then `threads` (the environment records it), as the CLI's
        repeated --threads does, so a suite and the CLI make the same machine class."""
        counts = tuple(self.thread_counts)
        if len(counts) == 1 and self.threads in (None, counts[0]):
            object.__setattr__(self, "threads", counts[0])
            object.__setattr__(self, "thread_counts", ())
        elif len(counts) > 1 and self.threads is None and all(isinstance(t, int) for t in counts):
            object.__setattr__(self, "threads", max(counts))

    @classmethod
    def from_options(cls, quick: bool, **given: Any) -> RunConfig:
        """A config from command-line options: the QUICK preset (with --quick) under what was
        given; an option left unset (None) keeps the preset's or the default value."""
        preset: dict[str, Any] = dict(QUICK) if quick else {}
        return cls(quick=quick, **(preset | {k: v for k, v in given.items() if v is not None}))

    def validate(self) -> RunConfig:
        """Raise UsageError on the first invalid setting; return self for chaining.

        Checks the settings alone (no torch, no files): the device and --data are checked by
        the runner's preflight and the data loader.
        """
        if not self.backbones:
            raise UsageError("at least one backbone is needed")
        for b in self.backbones:
            check_backbone(b)  # registered, or a name a plugin may have (checked in preflight)
        if not self.pipelines:
            raise UsageError("at least one pipeline is needed")
        for p in self.pipelines:
            check_pipeline(p)
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
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
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
        self._check_runtimes()
        parse_device_spec(self.device)
        if self.device == "cpu":  # known without torch; check_device_options covers "auto"
            check_cuda_only_options(self, "cpu")
        return self

    def _check_runtimes(self) -> None:
        """--runtime, --quantize and a --threads sweep: what the runtimes can run (the
        execution provider a CUDA device needs is checked in the runner's preflight)."""
        check_runtime_names(self.runtimes, self.mode)
        for t in self.thread_counts:
            if t < 1:
                raise UsageError(f"--threads must be >= 1, got {t}")
        if len(set(self.thread_counts)) != len(self.thread_counts):
            counts = ", ".join(map(str, self.thread_counts))
            raise UsageError(f"--threads given the same count twice: {counts}")
        if self.thread_counts and self.threads != max(self.thread_counts):
            raise UsageError(
                f"threads = {self.threads} with thread_counts = {list(self.thread_counts)}: a "
                "sweep runs at its own counts; leave threads out (or equal to the largest count)"
            )
        if self.quantize is not None:
            _choice("quantize", self.quantize, QUANTIZE_MODES)
            if ORT_RUNTIME not in self.runtimes:
                raise UsageError(f"--quantize {self.quantize} needs --runtime {ORT_RUNTIME}")
        if ORT_RUNTIME in self.runtimes:
            check_runtime_options(self)

    @property
    def variants(self) -> tuple[Variant, ...]:
        """Every runtime variant the run measures, in the order it measures them: per thread
        count of a sweep, each runtime, ONNX Runtime's int8 file after its fp32 one."""
        out = []
        for threads in self.thread_counts or (None,):
            for runtime in self.runtimes:
                out.append(Variant(runtime, None, threads))
                if runtime == ORT_RUNTIME and self.quantize is not None:
                    out.append(Variant(runtime, self.quantize, threads))
        return tuple(out)

    @property
    def modes(self) -> tuple[str, ...]:
        return ("infer", "train") if self.mode == "both" else (self.mode,)

    @property
    def images_needed(self) -> int:
        """Input images every measurement together needs (the largest batch or timed call)."""
        return max(self.preprocess_images, *self.batch_sizes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GRAY_BYTES_PER_IMAGE = SOURCE_SIZE * SOURCE_SIZE  # uint8 source image
FLOAT_BYTES = 4


def input_bytes(config: RunConfig) -> tuple[int, int]:
    """A lower bound of the memory a run's inputs take: (host bytes, device bytes).

    The host holds the uint8 source images and a float 3xSxS batch (the batched preprocessing
    output, or the host-upscaled copy on CUDA) at the largest batch or preprocessing call; the
    device holds that float batch. Models and activations come on top, so a run refused by
    this estimate could never have fit.
    """
    side = max(INPUT_SIZES[p] for p in config.pipelines)
    float_batch = max(config.batch_sizes) * 3 * side * side * FLOAT_BYTES
    float_pre = config.preprocess_images * 3 * side * side * FLOAT_BYTES
    host = config.images_needed * GRAY_BYTES_PER_IMAGE + max(float_batch, float_pre)
    return host, float_batch


def check_input_memory(config: RunConfig, device: torch.device | None = None) -> None:
    """UsageError, before anything is allocated, when the inputs alone cannot fit: in the
    available RAM (device None or CPU) or in the GPU's memory (a CUDA device)."""
    host, on_device = input_bytes(config)
    if device is None or device.type == "cpu":
        import psutil

        need, have, where = host, int(psutil.virtual_memory().available), "available RAM"
    else:
        need, have, where = on_device, cuda_total_bytes(device), f"memory of {device}"
    if need > have:
        side = max(INPUT_SIZES[p] for p in config.pipelines)
        largest = max(config.batch_sizes)
        what = (
            f"--batch-size {largest}"
            if largest >= config.preprocess_images
            else f"--preprocess-images {config.preprocess_images}"
        )
        raise UsageError(
            f"{what} needs at least {_gib(need)} for its inputs alone (3x{side}x{side} float32 "
            f"per image, before any model memory), more than the {_gib(have)} of {where}; "
            "use a smaller batch"
        )


def check_runtime_names(runtimes: tuple[str, ...], mode: str = "infer") -> None:
    """--runtime (compare, suites, maxbatch): at least one, known, each once; onnxruntime
    infers only (`mode`: infer, train or both)."""
    if not runtimes:
        raise UsageError("at least one --runtime is needed")
    for r in runtimes:
        _choice("runtime", r, RUNTIMES)
    if len(set(runtimes)) != len(runtimes):
        raise UsageError(f"--runtime given twice: {', '.join(runtimes)}")
    if ORT_RUNTIME in runtimes and mode != "infer":
        raise UsageError(
            f"--runtime {ORT_RUNTIME} measures inference only (an ONNX file does not train): "
            "use --mode infer"
        )


def check_runtime_options(config: RunConfig) -> None:
    """Options ONNX Runtime cannot honour: a UsageError before anything is exported."""
    runtime = f"--runtime {ORT_RUNTIME}"
    if config.compile != "none":
        raise UsageError(
            f"{runtime} runs the exported file, not torch.compile: drop --compile "
            f"{config.compile} (or measure it in its own run with --runtime {TORCH_RUNTIME})"
        )
    if config.precision != "fp32":
        raise UsageError(
            f"{runtime} runs the fp32 export (and its int8 file with --quantize int8), not "
            f"--precision {config.precision}: use --precision fp32"
        )
    if config.channels_last:
        raise UsageError(
            f"{runtime} chooses its own memory layout: --channels-last applies to "
            f"--runtime {TORCH_RUNTIME} only"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _finite_at_least(name: str, value: float, low: float, strict: bool = False) -> None:
    if not math.isfinite(value) or value < low or (strict and value == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise UsageError(f"{name} must be a finite number {bound}, got {value}")


def check_backbone(name: str) -> None:
    """A registered name, `module:function` or an installed entry point's name passes, without
    torch; anything else is a UsageError. A plugin's module and models are checked by
    emobench.models.check_backbone, before any measurement (the scenarios' preflight)."""
    if name in BACKBONE_NAMES:
        return
    import importlib.metadata

    installed = {ep.name for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}
    if ":" not in name and name not in installed:
        raise UsageError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONE_NAMES)}")


def is_plugin(name: str) -> bool:
    """A backbone name that is not the registry's: a plugin's, checked before measuring."""
    return name not in BACKBONE_NAMES


def check_pipeline(name: str) -> None:
    if name not in ALL_PIPELINES:
        raise UsageError(f"unknown pipeline {name!r}; choose one of: {', '.join(ALL_PIPELINES)}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


# -- suite files -------------------------------------------------------------------------------

MAX_SUITE_BYTES = 2**20


def load_suite(path: Path) -> RunConfig:
    """Read a suite file: a [suite] table whose keys are RunConfig fields.

    Unknown keys and wrong types are UsageErrors naming the file, the key and what was expected.
    """
    from emobench.files import read_text

    text = read_text(path, UsageError, "suite file", MAX_SUITE_BYTES)
    try:
        data = tomllib.loads(text)
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
    "thread_counts": "a list of integers",
    "runtimes": "a list of strings",
    "quantize": "a string",
    "max_time_s": "a number",
    "target_ci": "a number",
    "limits_time_s": "a number",
    "time_budget_s": "a number",
    "allow_emulated": "a boolean",
    "paired": "a boolean",
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
        if ok and not math.isfinite(value):
            raise UsageError(f"{path}: key {key!r} must be a finite number, got {value}")
    elif expected == "a boolean":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UsageError(f"{path}: key {key!r} must be {expected}, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

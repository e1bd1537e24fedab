"""`stream`'s options, checked without torch (a usage error answers before any import of torch
or LoadGen's model side)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from emobench.errors import UsageError
from emobench.names import PIPELINE_NAMES, RUNTIMES, TORCH_RUNTIME
from emobench.results.stream import STREAM_SCENARIOS

DEFAULT_FPS = 30.0
DEFAULT_MAX_BATCH = 8  # the server SUT's dynamic batching: a batch is cut at this size ...
DEFAULT_BATCH_WINDOW_MS = 2.0  # ... or when its first frame has waited this long
DEFAULT_TIME_BUDGET_S = 120.0  # the whole command, the server search included
DEFAULT_PROBE_S = 2.0  # one LoadGen run's minimum duration without --mlperf
DEFAULT_MAX_STREAMS = 4096  # the server search's ceiling
MLPERF_MIN_DURATION_S = 600.0  # the MLPerf inference rules' minimum run (edge and datacenter)
LOADGEN_MISSING = (
    "emobench stream needs MLPerf LoadGen: pip install mlcommons-loadgen (the mlperf_loadgen "
    "module)"
)


@dataclass(frozen=True)
class StreamConfig:
    """`emobench stream`'s options. In the server scenario a batch holds whole frames of
    faces_per_frame (K) images: max_batch // K frames, so a K that does not divide max_batch
    under-fills every full batch (K = 3, max_batch 8: 6 images), and a K above max_batch is
    refused."""

    backbone: str = "resnet18"
    pipelines: tuple[str, ...] = PIPELINE_NAMES
    device: str = "auto"
    runtime: str = TORCH_RUNTIME
    scenarios: tuple[str, ...] = ("server",)
    fps: float = DEFAULT_FPS
    deadline_ms: float | None = None  # None: one frame, 1000 / fps
    faces_per_frame: int = 1  # samples per query (multi stream); server: samples per frame
    max_batch: int = DEFAULT_MAX_BATCH
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    probe_s: float = DEFAULT_PROBE_S
    max_streams: int = DEFAULT_MAX_STREAMS
    mlperf: bool = False  # the MLPerf rules' minimum duration and query counts
    data: str | None = None
    seed: int = 0
    threads: int | None = None
    num_classes: int = 7

    @property
    def deadline_s(self) -> float:
        return (self.deadline_ms if self.deadline_ms is not None else 1000.0 / self.fps) / 1e3

    def validate(self) -> StreamConfig:
        """The first invalid option as a UsageError; self for chaining."""
        from emobench.config import check_backbone, check_pipeline

        check_backbone(self.backbone)
        if not self.pipelines:
            raise UsageError("at least one pipeline is needed")
        for p in self.pipelines:
            check_pipeline(p)
        if self.runtime not in RUNTIMES:
            raise UsageError(
                f"unknown runtime {self.runtime!r}; choose one of: {', '.join(RUNTIMES)}"
            )
        if not self.scenarios:
            raise UsageError("at least one --scenario is needed")
        for s in self.scenarios:
            if s not in STREAM_SCENARIOS:
                raise UsageError(
                    f"unknown scenario {s!r}; choose one of: {', '.join(STREAM_SCENARIOS)}"
                )
        if len(set(self.scenarios)) != len(self.scenarios):
            raise UsageError(f"--scenario given twice: {', '.join(self.scenarios)}")
        _positive_finite("--fps", self.fps)
        if self.deadline_ms is not None:
            _positive_finite("--deadline-ms", self.deadline_ms)
        if isinstance(self.faces_per_frame, bool) or self.faces_per_frame < 1:
            raise UsageError(f"--faces-per-frame must be >= 1, got {self.faces_per_frame}")
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be >= 1, got {self.max_batch}")
        if "server" in self.scenarios and self.faces_per_frame > self.max_batch:
            raise UsageError(
                f"--faces-per-frame {self.faces_per_frame} is more than --max-batch "
                f"{self.max_batch}: a server batch holds whole frames"
            )
        if not math.isfinite(self.batch_window_ms) or self.batch_window_ms < 0:
            raise UsageError(
                f"--batch-window-ms must be a finite number >= 0, got {self.batch_window_ms}"
            )
        if self.batch_window_ms >= self.deadline_s * 1e3:
            raise UsageError(
                f"--batch-window-ms {self.batch_window_ms:g} is not shorter than the deadline "
                f"({self.deadline_s * 1e3:.3g} ms): a frame could wait out its deadline before "
                "its batch is cut"
            )
        _positive_finite("--time-budget", self.time_budget_s)
        _positive_finite("--probe-s", self.probe_s)
        if self.max_streams < 1:
            raise UsageError(f"--max-streams must be >= 1, got {self.max_streams}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.mlperf and self.time_budget_s < MLPERF_MIN_DURATION_S:
            raise UsageError(
                f"--mlperf runs each LoadGen test for at least {MLPERF_MIN_DURATION_S:g} s (the "
                f"rules' minimum): --time-budget {self.time_budget_s:g} s cannot hold one; give "
                "a larger --time-budget"
            )
        return self


def check_loadgen() -> str:
    """LoadGen's version, or one UsageError line naming what to install."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        raise UsageError(LOADGEN_MISSING) from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlcommons-loadgen")
    except PackageNotFoundError:
        return "unknown"


def _positive_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a finite number > 0, got {value}")

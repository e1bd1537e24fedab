"""What `emobench stream` measures: LoadGen runs of each pipeline as a deployment sees it (torch-
free dataclasses; `results.io` reads and writes them inside a Report of kind "stream")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STREAM_SCENARIOS = ("single-stream", "multi-stream", "server", "offline")


@dataclass(frozen=True)
class LatencyPercentiles:
    """Per-query latency over a LoadGen run, in milliseconds (LoadGen's own figures)."""

    mean: float
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True)
class LoadgenRun:
    """One LoadGen test: its scenario, the target it was asked to meet, what it measured, and
    its own verdict (VALID/INVALID and why, as LoadGen's summary states it)."""

    scenario: str  # one of STREAM_SCENARIOS
    # the verdict under the run's rules, always with the scenario's percentile within the
    # deadline (LoadGen checks a latency bound for Server only): with mlperf, LoadGen's "Result
    # is : VALID" as well; in default mode LoadGen's constraints (latency bound, min duration,
    # min queries) without early stopping, which a short run cannot satisfy (loadgen_valid:
    # LoadGen's own verdict)
    valid: bool
    invalid_reasons: list[str]  # LoadGen's lines after "INVALID" (empty when valid)
    latency_ms: LatencyPercentiles | None  # None: no query completed
    queries: int  # queries LoadGen issued
    samples: int  # samples (faces) in them
    duration_s: float  # the run's measured span
    achieved_qps: float | None  # completed per second: queries (server: frames, offline: images)
    target_qps: float | None = None  # server: the Poisson arrival rate asked for
    target_latency_ms: float | None = None  # the deadline the percentile is held to
    target_percentile: float | None = None  # 0.9 (single stream), 0.99 (multi stream, server)
    streams: int | None = None  # server: the streams this rate stands for (rate / fps)
    batch_sizes: dict[str, int] = field(default_factory=dict)  # batch size -> batches formed
    late: int = 0  # queries whose latency exceeded the deadline
    mlperf: bool = False  # the MLPerf rules' minimum duration and query counts applied
    settings: dict[str, Any] = field(default_factory=dict)  # the TestSettings in force
    log_dir: str | None = None  # where LoadGen's own summary and detail logs were kept
    loadgen_valid: bool | None = None  # LoadGen's own verdict, early stopping included
    early_stopping_met: bool | None = None  # LoadGen's early-stopping check (None: not logged)
    early_stopping: str | None = None  # LoadGen's early-stopping text
    # LoadGen's early-stopping estimate of the percentile (single stream p90, multi stream p99):
    # the figure an MLPerf result states
    early_stopping_latency_ms: float | None = None


@dataclass(frozen=True)
class StreamResult:
    """One pipeline under one scenario: its LoadGen runs (a server search: one per probed
    rate), and for server the most streams served within the deadline at the percentile."""

    backbone: str
    pipeline: str
    runtime: str
    scenario: str
    runs: list[LoadgenRun]
    max_streams: int | None = None  # server: the most streams whose run was VALID; 0: none
    search_resolution: int | None = None  # server: streams between the last valid and invalid
    error: str | None = None  # a failure that left this pipeline unmeasured


@dataclass(frozen=True)
class StreamSummary:
    """A `stream` report's body: the camera settings and each pipeline's results."""

    fps: float
    deadline_ms: float
    faces_per_frame: int
    max_batch: int
    batch_window_ms: float
    mlperf: bool
    loadgen_version: str
    results: list[StreamResult]
    notes: list[str] = field(default_factory=list)

    def result(self, backbone: str, pipeline: str, scenario: str) -> StreamResult | None:
        return next(
            (
                r
                for r in self.results
                if r.backbone == backbone and r.pipeline == pipeline and r.scenario == scenario
            ),
            None,
        )

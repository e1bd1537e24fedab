"""`emobench stream`: each pipeline built as compare builds it, warmed at every batch size it
will see, then driven by MLPerf LoadGen once per scenario (server: one run per probed streams
count, the max-streams search), all within --time-budget; the report of kind "stream".

LoadGen's own logs are written to a staging folder beside `log_root` and moved into it only when
the whole command has finished: an interrupted or failed run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from emobench.data.images import input_images
from emobench.device import cap_threads_to_usable_cores, device_scope, resolve_device
from emobench.files import current_umask
from emobench.measure.env import fingerprint
from emobench.models import build_model
from emobench.names import ORT_RUNTIME
from emobench.results import Report
from emobench.results.progress import ProgressFn, no_progress
from emobench.results.stream import LoadgenRun, StreamResult, StreamSummary
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.stream.harness import (
    DEFAULT_MIN_QUERIES,
    MLPERF_MIN_DURATION_MS,
    MLPERF_MIN_QUERIES,
    MULTI_STREAM,
    OFFLINE,
    SERVER,
    SINGLE_STREAM,
    HarnessSettings,
    Predict,
    run_loadgen,
)
from emobench.scenarios.stream.search import SearchCut, max_streams
from emobench.scenarios.stream.settings import StreamConfig, check_loadgen

N_IMAGES = 64  # the query sample library in default mode
MLPERF_IMAGES = 1024  # --mlperf: mlperf.conf's performance_sample_count for image classification
MIN_PROBE_S = 0.25  # a budget-shortened run never lasts less than this
RUN_OVERHEAD_S = 0.3  # per LoadGen run: its setup, the drain after the last query, the logs
PROBE_SLACK = 1.2  # a run lasts about this x its minimum duration (offline: see OFFLINE_HINT)
MLPERF_SLACK = 1.02  # ... and a rules run (600 s) this x
SEARCH_PROBES = 10  # what a server search is planned to cost, in runs (growth and bisection)
LATENCY_HINT = 0.5  # tell LoadGen half the warm latency: it then generates queries enough
OFFLINE_HINT = 1.5  # ... and 1.5 x the warm throughput, so offline's one query outlasts its
# minimum duration (LoadGen sizes it at 1.1 x duration x the expected rate)
WARM_TIMED_CALLS = 3  # the hints: the best of this many calls at a batch size ...
WARM_TIMED_S = 0.5  # ... or of those that fit in this long


@dataclass
class _Bench:
    """One pipeline ready to serve: its predict, the warm timings, or why it is not there."""

    pipeline: str
    predict: Predict | None = None
    warm_s: dict[int, float] = field(default_factory=dict)  # batch size -> one call's seconds
    error: str | None = None


def run_stream(
    config: StreamConfig, progress: ProgressFn | None = None, log_root: Path | None = None
) -> Report:
    """Drive each pipeline through LoadGen in every scenario of `config`; the report (nothing
    but LoadGen's logs is written: under `log_root/<pipeline>-<scenario>[-<streams>]/`, or
    nowhere when `log_root` is None)."""
    started = time.perf_counter()
    config.validate()
    version = check_loadgen()
    device = resolve_device(config.device)
    if config.runtime == ORT_RUNTIME:
        from emobench.runtimes.onnx import check_available

        check_available(device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    else:
        cap_threads_to_usable_cores()
    n_images = MLPERF_IMAGES if config.mlperf else N_IMAGES
    images = input_images(config.data, config.seed, n_images)
    if log_root is not None:
        log_root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{log_root.name}-partial-", dir=log_root.parent))
    else:
        staging = Path(tempfile.mkdtemp(prefix="emobench-stream-"))
    export_dir = (
        Path(tempfile.mkdtemp(prefix="emobench-export-")) if config.runtime == ORT_RUNTIME else None
    )
    try:
        with device_scope(device):
            run = _StreamRun(config, device, images, staging, export_dir, progress, started)
            results = run.measure()
        results = _keep_logs(results, staging, log_root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if export_dir is not None:
            shutil.rmtree(export_dir, ignore_errors=True)
    (progress or no_progress)("done", run.done, run.done)
    summary = StreamSummary(
        fps=config.fps,
        deadline_ms=config.deadline_s * 1e3,
        faces_per_frame=config.faces_per_frame,
        max_batch=config.max_batch,
        batch_window_ms=config.batch_window_ms,
        mlperf=config.mlperf,
        loadgen_version=version,
        results=results,
        notes=run.notes(results),
    )
    return Report(
        kind="stream",
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=json.loads(json.dumps(dataclasses.asdict(config)))
        | {
            "resolved_device": str(device),
            "threads_in_force": torch.get_num_threads(),
            "images": n_images,
            "probe_s_in_force": None if config.mlperf else run.probe_s,
            "loadgen_version": version,
        },
        environment=fingerprint(device),
        results=[],
        stream=summary,
    )


class _StreamRun:
    def __init__(
        self,
        config: StreamConfig,
        device: torch.device,
        images: np.ndarray,
        staging: Path,
        export_dir: Path | None,
        progress: ProgressFn | None,
        started: float,
    ) -> None:
        self.config = config
        self.device = device
        self.host = torch.from_numpy(images)
        self.staging = staging
        self.export_dir = export_dir
        self.progress = progress or no_progress
        self.budget_end = started + config.time_budget_s
        self.probe_s = config.probe_s
        self.shortened = False
        self.done = 0
        self.total = len(config.pipelines) + self._planned_runs(len(config.pipelines))
        self.search_notes: list[str] = []

    # -- the plan ---------------------------------------------------------------------------

    def _units(self, scenario: str) -> float:
        return SEARCH_PROBES if scenario == SERVER else 1.0

    def _planned_runs(self, pipelines: int) -> int:
        return round(pipelines * sum(self._units(s) for s in self.config.scenarios))

    def run_s(self, scenario: str, bench: _Bench) -> float:
        """About how long one LoadGen run of `scenario` takes: its minimum duration, or the
        minimum queries at the warm latency when they take longer, with the drain and setup."""
        c = self.config
        duration = MLPERF_MIN_DURATION_MS / 1e3 if c.mlperf else self.probe_s
        min_queries = MLPERF_MIN_QUERIES[scenario] if c.mlperf else DEFAULT_MIN_QUERIES
        if scenario == SINGLE_STREAM:
            duration = max(duration, min_queries * bench.warm_s.get(1, 0.0))
        elif scenario == MULTI_STREAM:
            duration = max(duration, min_queries * bench.warm_s.get(c.faces_per_frame, 0.0))
        elif scenario == OFFLINE:
            duration *= 1.1 * OFFLINE_HINT
        # the rules' 600 s runs end within a query of their minimum; a short probe's drain
        # (the backlog after the last arrival) is a larger share of it
        return duration * (MLPERF_SLACK if c.mlperf else PROBE_SLACK) + RUN_OVERHEAD_S

    def _fit_probe(self, benches: dict[str, _Bench]) -> None:
        """Shorten the default runs when the planned runs would not fit in what is left of the
        budget (never below MIN_PROBE_S; the server searches stop at their share)."""
        if self.config.mlperf:
            return
        live = sum(1 for b in benches.values() if b.error is None)
        units = live * sum(
            self._units(s) * (1.1 * OFFLINE_HINT if s == OFFLINE else 1.0)
            for s in self.config.scenarios
        )
        if units == 0:
            return
        left = self.budget_end - time.perf_counter()
        fits = (left / units - RUN_OVERHEAD_S) / PROBE_SLACK
        if fits < self.probe_s:
            self.probe_s = max(MIN_PROBE_S, fits)
            self.shortened = True

    def step(self, what: str) -> None:
        self.progress(what, self.done, max(self.total, self.done + 1))
        self.done += 1

    # -- building ----------------------------------------------------------------------------

    def measure(self) -> list[StreamResult]:
        c = self.config
        benches = {p: self._build(p) for p in c.pipelines}
        self._fit_probe(benches)
        self.total = self.done + self._planned_runs(
            sum(1 for b in benches.values() if b.error is None)
        )
        out: dict[tuple[str, str], StreamResult] = {}
        for i, scenario in enumerate(c.scenarios):
            # the pipeline that goes first alternates between scenarios
            order = c.pipelines if i % 2 == 0 else tuple(reversed(c.pipelines))
            for p in order:
                out[(scenario, p)] = self._scenario(benches[p], scenario, order)
        return [out[(s, p)] for s in c.scenarios for p in c.pipelines]

    def _build(self, pipeline: str) -> _Bench:
        c = self.config
        self.step(f"{c.backbone}/{pipeline}: build, warm every batch size")
        bench = _Bench(pipeline)
        try:
            torch.manual_seed(c.seed)
            model = build_model(c.backbone, pipeline, num_classes=c.num_classes)
            pipe = Pipeline(pipeline, model, self.device, num_classes=c.num_classes)
            if c.runtime == ORT_RUNTIME:
                pipe = self._deploy(pipe)
            bench.predict = make_predict(pipe, self.host, self.device)
            bench.warm_s = warm(
                bench.predict, self._batch_sizes(), [1, c.faces_per_frame, c.max_batch]
            )
        except Exception as exc:
            bench.predict = None
            bench.error = _one_line(exc)
        return bench

    def _deploy(self, pipe: Pipeline) -> Pipeline:
        from emobench.runtimes.onnx import PARITY_BATCH, OrtSettings
        from emobench.runtimes.onnx import deploy as deploy_onnx

        assert self.export_dir is not None
        settings = OrtSettings(intra_op_threads=torch.get_num_threads(), device=str(self.device))
        probe = pipe.preprocess_batched(self.host[:PARITY_BATCH])
        return deploy_onnx(
            pipe,
            self.export_dir,
            settings,
            probe,
            calibration_source=f"--data {Path(self.config.data).name}"
            if self.config.data
            else "synthetic",
        )

    def _batch_sizes(self) -> list[int]:
        """Every model batch the scenarios can form: 1 (single stream) up to the larger of
        max_batch (server, offline) and faces_per_frame (multi stream, one frame)."""
        return list(range(1, max(self.config.max_batch, self.config.faces_per_frame) + 1))

    # -- one scenario --------------------------------------------------------------------------

    def _settings(
        self, bench: _Bench, scenario: str, streams: int | None = None
    ) -> HarnessSettings:
        c = self.config
        hint_ms = None
        expected_qps = None
        if scenario == SINGLE_STREAM and 1 in bench.warm_s:
            hint_ms = bench.warm_s[1] * 1e3 * LATENCY_HINT
        elif scenario == MULTI_STREAM and c.faces_per_frame in bench.warm_s:
            hint_ms = bench.warm_s[c.faces_per_frame] * 1e3 * LATENCY_HINT
        elif scenario == OFFLINE and c.max_batch in bench.warm_s:
            expected_qps = c.max_batch / max(bench.warm_s[c.max_batch], 1e-6) * OFFLINE_HINT
        return HarnessSettings(
            deadline_ms=c.deadline_s * 1e3,
            fps=c.fps,
            faces_per_frame=c.faces_per_frame,
            max_batch=c.max_batch,
            batch_window_ms=c.batch_window_ms,
            probe_s=self.probe_s,
            mlperf=c.mlperf,
            streams=streams,
            expected_latency_ms=hint_ms,
            expected_qps=expected_qps,
        )

    def _scenario(self, bench: _Bench, scenario: str, order: tuple[str, ...]) -> StreamResult:
        c = self.config
        result = StreamResult(c.backbone, bench.pipeline, c.runtime, scenario, runs=[])
        if bench.error is not None:
            return dataclasses.replace(result, error=bench.error)
        if scenario == SERVER:
            return self._search(bench, result)
        left = self.budget_end - time.perf_counter()
        if self.run_s(scenario, bench) > left:
            self.total -= 1
            return dataclasses.replace(result, error=self._spent(left))
        self.step(f"{c.backbone}/{bench.pipeline}: {scenario}")
        try:
            run = self._loadgen(bench, scenario)
        except Exception as exc:
            return dataclasses.replace(result, error=_one_line(exc))
        return dataclasses.replace(result, runs=[run])

    def _loadgen(self, bench: _Bench, scenario: str, streams: int | None = None) -> LoadgenRun:
        assert bench.predict is not None
        name = f"{bench.pipeline}-{scenario}" + (f"-{streams}" if streams is not None else "")
        return run_loadgen(
            scenario,
            bench.predict,
            len(self.host),
            self._settings(bench, scenario, streams),
            self.staging / name,
        )

    def _search(self, bench: _Bench, result: StreamResult) -> StreamResult:
        """The max-streams search: each probe a LoadGen server run at streams x fps frames per
        second, within this search's share of what is left of the budget."""
        c = self.config
        now = time.perf_counter()
        remaining_units = self._remaining_units(bench, result)
        share = (self.budget_end - now) * SEARCH_PROBES / max(remaining_units, SEARCH_PROBES)
        search_end = now + share
        runs: list[LoadgenRun] = []
        cost = self.run_s(SERVER, bench)
        planned = SEARCH_PROBES
        cut: list[bool] = []

        def probe(streams: int) -> bool:
            at = time.perf_counter()
            first = not runs
            if at + cost > (self.budget_end if first else search_end):
                cut.append(True)
                raise SearchCut()
            if len(runs) >= planned:
                self.total += 1
            again = any(r.streams == streams for r in runs)
            self.step(
                f"{c.backbone}/{bench.pipeline}: server, {streams} streams "
                f"({streams * c.fps:g} frames/s)" + (", once more" if again else "")
            )
            run = self._loadgen(bench, SERVER, streams)
            runs.append(run)
            return run.valid

        try:
            best, resolution = max_streams(probe, c.max_streams)
        except Exception as exc:
            self.total -= max(0, planned - len(runs))
            return dataclasses.replace(result, runs=runs, error=_one_line(exc))
        self.total -= max(0, planned - len(runs))
        if not runs:
            return dataclasses.replace(
                result, error=self._spent(self.budget_end - time.perf_counter())
            )
        tag = f"{c.backbone}/{bench.pipeline}"
        self.search_notes += _search_notes(tag, runs)
        if cut:
            self.search_notes.append(
                f"{tag}: the server search was cut by --time-budget after {len(runs)} runs: "
                f"max streams >= {best} (a lower bound; up to {resolution} more unresolved)"
            )
        elif best == c.max_streams:
            self.search_notes.append(
                f"{tag}: every probe up to the --max-streams ceiling ({c.max_streams}) was "
                "valid: the device may serve more"
            )
        return dataclasses.replace(
            result, runs=runs, max_streams=best, search_resolution=resolution
        )

    def _remaining_units(self, bench: _Bench, result: StreamResult) -> float:
        """Planned runs from this search on (itself included), in search units."""
        c = self.config
        idx = c.scenarios.index(result.scenario)
        later = sum(self._units(s) for s in c.scenarios[idx + 1 :])
        # this scenario: this pipeline and those after it in this scenario's order
        order = c.pipelines if idx % 2 == 0 else tuple(reversed(c.pipelines))
        after = len(order) - order.index(bench.pipeline)
        return after * self._units(SERVER) + later * len(c.pipelines)

    def _spent(self, left: float) -> str:
        return (
            f"not run: --time-budget {self.config.time_budget_s:g} s was spent "
            f"({max(0.0, left):.1f} s left, less than one run)"
        )

    # -- notes ---------------------------------------------------------------------------------

    def notes(self, results: list[StreamResult]) -> list[str]:
        c = self.config
        notes: list[str] = []
        if c.mlperf:
            notes.append(
                "MLPerf-style: the inference rules' minimums (loadgen/mlperf.conf): each run "
                f"at least {MLPERF_MIN_DURATION_MS / 1e3:g} s, min query counts (single stream "
                f"{MLPERF_MIN_QUERIES[SINGLE_STREAM]}, multi stream "
                f"{MLPERF_MIN_QUERIES[MULTI_STREAM]}, server {MLPERF_MIN_QUERIES[SERVER]}, "
                f"offline {MLPERF_MIN_QUERIES[OFFLINE]} samples), early stopping required, the "
                f"rules' seeds, {MLPERF_IMAGES} images in the sample library; not a submission "
                "(no accuracy run, no compliance tests), and the latency bound is the camera's "
                f"deadline ({c.deadline_s * 1e3:.3g} ms), not a rules benchmark's"
                + (
                    f"; multi stream uses {c.faces_per_frame} samples per query (the rules: 8)"
                    if MULTI_STREAM in c.scenarios and c.faces_per_frame != 8
                    else ""
                )
            )
        else:
            notes.append(
                f"not MLPerf-style: each LoadGen run lasts about {self.probe_s:.3g} s (at least "
                f"{DEFAULT_MIN_QUERIES} queries); LoadGen's early-stopping check is reported "
                "but not required (a short run has too few queries for it); --mlperf applies "
                "the rules' minimums (600 s per run, the query counts, early stopping)"
            )
        if self.shortened:
            notes.append(
                f"--probe-s {c.probe_s:g} s shortened to {self.probe_s:.3g} s to fit "
                f"--time-budget {c.time_budget_s:g} s"
            )
        if SERVER in c.scenarios:
            frames = max(1, c.max_batch // c.faces_per_frame)
            notes.append(
                f"server: Poisson arrivals at streams x {c.fps:g} frames/s, each frame of "
                f"{c.faces_per_frame} face(s) one LoadGen sample, valid when its p99 latency "
                f"is within {c.deadline_s * 1e3:.3g} ms; dynamic batching: a batch is cut at "
                f"{frames} frame(s) ({frames * c.faces_per_frame} images) or when its first "
                f"frame has waited {c.batch_window_ms:g} ms; a backlog past LoadGen's bound "
                "(server_max_async_queries: more than 1% of the run's frames certainly late) "
                "ends the run early, INVALID; arrivals are Poisson (LoadGen's Server): "
                "burstier than N periodic cameras, so max streams is a pessimistic estimate; "
                "at 1 stream a periodic camera may be served where Poisson arrivals are not "
                "(single-stream shows that case)"
            )
        notes += self.search_notes
        return notes


P99_EXACT_FRAMES = 100  # below this many frames a run's p99 is its slowest frame


def _search_notes(tag: str, runs: list[LoadgenRun]) -> list[str]:
    """What a server search's runs rest on: the count probed twice (the first found invalid),
    and the runs whose p99 is their maximum (fewer than P99_EXACT_FRAMES frames)."""
    notes: list[str] = []
    counts = [r.streams for r in runs]
    twice = next((n for i, n in enumerate(counts) if n in counts[:i]), None)
    if twice is not None:
        rerun = [r for r in runs if r.streams == twice][1]
        notes.append(
            f"{tag}: server at {twice} streams, the first count found invalid, was probed "
            f"twice (one outlier frame must not end the search; the second run "
            f"{'valid' if rerun.valid else 'invalid too'}); both runs are recorded, and counts "
            "above it are probed once, as is every count the bisection probes"
        )
    few = [
        f"p99 of {r.queries} frames is their maximum ({r.streams} streams)"
        for r in runs
        if 0 < r.queries < P99_EXACT_FRAMES
    ]
    if few:
        notes.append(f"{tag} server: " + "; ".join(few))
    return notes


def make_predict(pipe: Pipeline, host: torch.Tensor, device: torch.device) -> Predict:
    """The system under test's work on sample-library indices: the uint8 images gathered on
    the host, batched preprocessing and the model on the device (synchronised on CUDA, so the
    call returns when the results exist), as compare's end-to-end step does."""
    cuda = device.type == "cuda"

    def predict(indices: list[int]) -> None:
        batch = host.index_select(0, torch.as_tensor(indices, dtype=torch.long))
        if cuda:  # torch's current device is per thread: pin it for whichever thread calls
            with torch.cuda.device(device):
                pipe.end_to_end(batch)
                torch.cuda.synchronize(device)
        else:
            pipe.end_to_end(batch)

    return predict


def warm(predict: Predict, sizes: list[int], timed: list[int]) -> dict[int, float]:
    """One call at every batch size (one-time costs paid before LoadGen starts), then the
    `timed` sizes' best of up to WARM_TIMED_CALLS more (while they take under WARM_TIMED_S):
    the hints LoadGen is given (expected latency, offline throughput)."""
    for n in sizes:
        predict(list(range(n)))
    best: dict[int, float] = {}
    for n in dict.fromkeys(timed):
        spent = 0.0
        for _ in range(WARM_TIMED_CALLS):
            t0 = time.perf_counter()
            predict(list(range(n)))
            took = time.perf_counter() - t0
            best[n] = min(best.get(n, took), took)
            spent += took
            if spent > WARM_TIMED_S:
                break
    return best


def _keep_logs(
    results: list[StreamResult], staging: Path, log_root: Path | None
) -> list[StreamResult]:
    """Move each run's LoadGen logs from the staging folder into `log_root` (or forget them:
    log_dir None) and record where they are."""
    moved: dict[str, str | None] = {}
    if log_root is not None:
        mode = 0o777 & ~current_umask()
        if not log_root.exists():
            os.chmod(staging, mode)
            staging.rename(log_root)
            moved = {str(staging / d.name): str(log_root / d.name) for d in log_root.iterdir()}
        else:
            for d in sorted(staging.iterdir()):
                target = log_root / d.name
                n = 2
                while target.exists():
                    target = log_root / f"{d.name}-{n}"
                    n += 1
                d.rename(target)
                moved[str(d)] = str(target)

    def where(run: LoadgenRun) -> LoadgenRun:
        return dataclasses.replace(run, log_dir=moved.get(run.log_dir or ""))

    return [dataclasses.replace(r, runs=[where(run) for run in r.runs]) for r in results]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__

"""MLPerf LoadGen around a system under test: the test settings for each scenario, the systems
under test (single stream, multi stream and offline run each query as LoadGen issues it; server
batches frames dynamically), LoadGen's verdict and latencies read back from its detail log, and
SIGINT/SIGTERM turned into a prompt, clean stop.

Model-agnostic: the caller's `predict(indices)` runs the pipeline (preprocessing and model) on
those images of the query sample library and returns when they are done; nothing here imports
torch. LoadGen (`mlperf_loadgen`) is imported when a run starts. `predict` is always called on
the thread that calls run_loadgen (in the server scenario LoadGen runs on a thread of its own),
so one thread, the one that warmed the model, makes every model call.

Default mode keeps each run short (`probe_s`, a few queries at least, a bound on the duration)
and reports LoadGen's early-stopping check without requiring it: at a few seconds per run the
99th percentile's early-stopping bound needs more queries than arrive. `mlperf=True` applies the
inference rules' minimums (loadgen/mlperf.conf: 600 s, the query counts, the seeds) and LoadGen's
own verdict, early stopping included.

Either way a run is VALID only when its scenario's percentile (single stream p90, multi stream
and server p99) is within the deadline: LoadGen holds a latency bound in Server alone (its
`result_perf_constraints_met`, required when Server's run states it), so this check is ours.
`late` (LoadgenRun) counts queries over the deadline: LoadGen's count in Server; in single and
multi stream timed here from the system under test's receipt of each query, not from LoadGen's
scheduled issue time (the latency figures themselves are LoadGen's).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from emobench.errors import MeasurementError, Terminated
from emobench.results.stream import STREAM_SCENARIOS, LatencyPercentiles, LoadgenRun

SINGLE_STREAM, MULTI_STREAM, SERVER, OFFLINE = STREAM_SCENARIOS
LOADGEN_SCENARIO = {
    SINGLE_STREAM: "SingleStream",
    MULTI_STREAM: "MultiStream",
    SERVER: "Server",
    OFFLINE: "Offline",
}
# the percentile each scenario's latency is held to (mlperf.conf: SingleStream 90, MultiStream
# and Server 99); offline has none
TARGET_PERCENTILE: dict[str, float | None] = {
    SINGLE_STREAM: 0.9,
    MULTI_STREAM: 0.99,
    SERVER: 0.99,
    OFFLINE: None,
}
# loadgen/mlperf.conf "*.*.qsl_rng_seed" etc.: every run, default mode included, draws the
# same samples and the same Poisson arrivals as a rules-conforming run would
RULES_SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}
MLPERF_MIN_DURATION_MS = 600_000  # mlperf.conf: "*.<scenario>.min_duration = 600000"
# the rules' query counts: mlperf.conf's "*.MultiStream.min_query_count = 662" (the queries
# early stopping needs for p99 at 99% confidence) and the image-classification model's
# "Offline.min_query_count = 24576" (samples); SingleStream and Server keep LoadGen's default
# (100): since v2.0 their count follows from early stopping, which the verdict requires
MLPERF_MIN_QUERIES = {SINGLE_STREAM: 100, MULTI_STREAM: 662, SERVER: 100, OFFLINE: 24576}
DEFAULT_MIN_QUERIES = 16  # default mode: a few queries at least, however short the probe
DEFAULT_MAX_DURATION_FACTOR = 4  # default mode: LoadGen stops issuing after 4 x probe_s
DEFAULT_EXPECTED_LATENCY_MS = 1.0  # a hint when none is given: LoadGen generates queries enough
DEFAULT_EXPECTED_QPS = 100.0
SIGMAS = 6  # the Poisson margin of the server's backlog bound (see backlog_bound)
DETAIL_LOG = "mlperf_log_detail.txt"
SUMMARY_LOG = "mlperf_log_summary.txt"
MLLOG = ":::MLLOG "

Predict = Callable[[list[int]], None]


@dataclass(frozen=True)
class HarnessSettings:
    """What one LoadGen run is asked: the camera's deadline and frame rate, the faces per
    frame, the server's dynamic batching, and how long to run."""

    deadline_ms: float
    fps: float = 30.0
    faces_per_frame: int = 1  # multi stream: samples per query; server: images per frame
    max_batch: int = 8  # the most images one model call takes (server, offline)
    batch_window_ms: float = 0.0  # server: a batch is cut when its first frame waited this long
    probe_s: float = 2.0  # default mode: the run's minimum duration
    mlperf: bool = False
    streams: int | None = None  # server: the rate is streams x fps frames per second ...
    target_qps: float | None = None  # ... unless given here (frames per second)
    expected_latency_ms: float | None = None  # single/multi stream: one query's latency, a hint
    expected_qps: float | None = None  # offline: images per second, a hint

    @property
    def server_qps(self) -> float:
        if self.target_qps is not None:
            return self.target_qps
        if self.streams is None:
            raise ValueError("a server run needs streams or target_qps")
        return self.streams * self.fps

    @property
    def min_duration_ms(self) -> int:
        return MLPERF_MIN_DURATION_MS if self.mlperf else max(1, round(self.probe_s * 1e3))


def backlog_bound(rate_qps: float, deadline_s: float, duration_s: float, min_queries: int) -> int:
    """The server's `server_max_async_queries`: a backlog of more frames than this means more
    than 1% of the run's frames are certainly past the deadline, so p99 cannot hold and LoadGen
    may stop issuing (the run is INVALID either way). Outstanding frames that arrived more than
    a deadline ago are late; those that arrived within it are at most a Poisson count of mean
    rate x deadline (bounded SIGMAS standard deviations above), and the run holds at most its
    Poisson count of rate x duration frames (or the minimum query count)."""
    in_deadline = rate_qps * deadline_s
    total = max(
        float(min_queries), rate_qps * duration_s + SIGMAS * math.sqrt(rate_qps * duration_s)
    )
    return (
        math.ceil(0.01 * total) + 1 + math.ceil(in_deadline + SIGMAS * math.sqrt(in_deadline)) + 10
    )


def test_settings(lg: Any, scenario: str, s: HarnessSettings) -> tuple[Any, dict[str, Any]]:
    """LoadGen's TestSettings for `scenario`, and the values set (for the report)."""
    if scenario not in LOADGEN_SCENARIO:
        raise ValueError(f"unknown scenario {scenario!r}")
    values: dict[str, Any] = {
        "scenario": LOADGEN_SCENARIO[scenario],
        "mode": "PerformanceOnly",
        **RULES_SEEDS,
        "min_duration_ms": s.min_duration_ms,
        "min_query_count": (
            MLPERF_MIN_QUERIES[scenario]
            if s.mlperf
            else max(DEFAULT_MIN_QUERIES, s.max_batch)
            if scenario == OFFLINE
            else DEFAULT_MIN_QUERIES
        ),
        "max_duration_ms": 0 if s.mlperf else s.min_duration_ms * DEFAULT_MAX_DURATION_FACTOR,
    }
    expected_ns = (s.expected_latency_ms or DEFAULT_EXPECTED_LATENCY_MS) * 1e6
    if scenario == SINGLE_STREAM:
        values["single_stream_expected_latency_ns"] = expected_ns
        values["single_stream_target_latency_percentile"] = TARGET_PERCENTILE[scenario]
    elif scenario == MULTI_STREAM:
        values["multi_stream_expected_latency_ns"] = expected_ns
        values["multi_stream_target_latency_percentile"] = TARGET_PERCENTILE[scenario]
        values["multi_stream_samples_per_query"] = s.faces_per_frame
    elif scenario == SERVER:
        rate = s.server_qps
        values["server_target_qps"] = rate
        values["server_target_latency_ns"] = max(1, round(s.deadline_ms * 1e6))
        values["server_target_latency_percentile"] = TARGET_PERCENTILE[scenario]
        values["server_max_async_queries"] = backlog_bound(
            rate, s.deadline_ms / 1e3, values["min_duration_ms"] / 1e3, values["min_query_count"]
        )
    else:
        values["offline_expected_qps"] = s.expected_qps or DEFAULT_EXPECTED_QPS
    ts = lg.TestSettings()
    for name, value in values.items():
        if name == "scenario":
            value = getattr(lg.TestScenario, value)
        elif name == "mode":
            value = lg.TestMode.PerformanceOnly
        setattr(ts, name, value)
    return ts, values


# -- the systems under test ---------------------------------------------------------------------


class _Sut:
    """What every system under test shares: the model call (skipped once the run is stopping:
    a signal, or an earlier call that raised), the completions LoadGen is told of, each
    query's latency as seen here, and the batch sizes formed."""

    def __init__(self, lg: Any, predict: Predict, settings: HarnessSettings, n_samples: int):
        self.lg = lg
        self.predict = predict
        self.settings = settings
        self.n_samples = n_samples
        self.stopping = False
        self.error: BaseException | None = None
        self.batch_sizes: Counter[int] = Counter()
        self.latencies_s: list[float] = []  # per query, issue -> completion, as seen here
        self.first_issue: float | None = None
        self.last_done: float | None = None
        self.lock = threading.Lock()

    def stop(self) -> None:
        self.stopping = True

    def run_model(self, indices: list[int]) -> None:
        if self.stopping:
            return
        try:
            self.predict(indices)
        except BaseException as exc:  # never into LoadGen's C++ stack: kept, raised after
            self.error = exc
            self.stopping = True
            return
        self.batch_sizes[len(indices)] += 1

    def complete(self, samples: list[Any], issued: list[float] | None = None) -> None:
        """Tell LoadGen these samples are done; `issued`: when each arrived, one latency each."""
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(q.id, 0, 0) for q in samples])
        now = time.perf_counter()
        with self.lock:
            self.last_done = now
            if issued is not None:
                self.latencies_s.extend(now - t for t in issued)

    def arrived(self, now: float) -> None:
        if self.first_issue is None:
            self.first_issue = now

    def issue(self, samples: list[Any]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """LoadGen issues no more queries."""

    def drive(self, start_test: Callable[[], None]) -> None:
        """Run LoadGen's test (`start_test`) with this system serving it."""
        start_test()


class _InlineSut(_Sut):
    """Single stream, multi stream and offline: each query runs as LoadGen issues it, on
    LoadGen's issuing thread, the caller's (the next query waits for it anyway); offline's one
    query runs in batches of max_batch images, each completed as it is done."""

    def __init__(self, *args: Any, offline: bool = False) -> None:
        super().__init__(*args)
        self.offline = offline

    def issue(self, samples: list[Any]) -> None:
        if self.stopping:  # the fast path: LoadGen races through what it has left
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(q.id, 0, 0) for q in samples])
            return
        now = time.perf_counter()
        self.arrived(now)
        step = self.settings.max_batch if self.offline else len(samples)
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step]
            self.run_model([q.index for q in chunk])
            self.complete(chunk)
        if not self.offline:
            with self.lock:
                self.latencies_s.append(time.perf_counter() - now)


class _BatchingSut(_Sut):
    """Server: frames queue as LoadGen issues them (LoadGen runs on a thread of its own); the
    calling thread cuts a batch when it holds max_batch images (whole frames of
    faces_per_frame images each, at least one frame) or when its first frame has waited
    batch_window_ms, runs it and completes its frames. The model thus runs on the thread that
    warmed it, as in the other scenarios: a second thread calling torch would start a second
    OpenMP pool, and two pools on a few cores slow each call by a third (measured).

    Stopping (a signal, a failed model call): later batches are not run; the frames are held
    until LoadGen stops issuing (its backlog bound, `server_max_async_queries`, or the end of
    its schedule) and flushes, then all completed at once, so LoadGen returns promptly."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        k = self.settings.faces_per_frame
        self.frames_per_batch = max(1, self.settings.max_batch // k)
        self.window_s = self.settings.batch_window_ms / 1e3
        self.queue: deque[tuple[Any, float]] = deque()
        self.cond = threading.Condition()
        self.flushed = False
        self.closed = False

    def images(self, sample_index: int) -> list[int]:
        k = self.settings.faces_per_frame
        return [(sample_index + j) % self.n_samples for j in range(k)]

    def issue(self, samples: list[Any]) -> None:
        now = time.perf_counter()
        self.arrived(now)
        with self.cond:
            self.queue.extend((q, now) for q in samples)
            self.cond.notify()

    def flush(self) -> None:
        with self.cond:
            self.flushed = True
            self.cond.notify()
            if self.stopping:
                self._release_all()

    def drive(self, start_test: Callable[[], None]) -> None:
        failed: list[BaseException] = []

        def loadgen() -> None:
            try:
                start_test()
            except BaseException as exc:  # raised on the calling thread, below
                failed.append(exc)
            finally:
                with self.cond:
                    self.closed = True
                    self.cond.notify()

        thread = threading.Thread(target=loadgen, name="emobench-loadgen", daemon=True)
        thread.start()
        try:
            self._serve()
        except BaseException:  # LoadGen still waits for its queries: release them, then raise
            self.stop()
            self._serve()
            raise
        finally:
            thread.join()
        if failed:
            raise failed[0]

    def _release_all(self) -> None:
        """(lock held) Complete every queued frame without running the model."""
        held = list(self.queue)
        self.queue.clear()
        if held:
            self.complete([q for q, _ in held])

    def _take(self) -> list[tuple[Any, float]] | None:
        """The next batch, cut by size or window; None when closed and empty."""
        with self.cond:
            while True:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if not self.queue:
                    return None
                if self.stopping:  # hold the frames until LoadGen flushes
                    if self.flushed:
                        self._release_all()
                    else:
                        self.cond.wait(0.05)
                    continue
                cut_at = self.queue[0][1] + self.window_s
                while len(self.queue) < self.frames_per_batch and not self.stopping:
                    left = cut_at - time.perf_counter()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                if self.stopping:
                    continue
                n = min(self.frames_per_batch, len(self.queue))
                return [self.queue.popleft() for _ in range(n)]

    def _serve(self) -> None:
        while (batch := self._take()) is not None:
            indices = [i for q, _ in batch for i in self.images(q.index)]
            self.run_model(indices)
            self.complete([q for q, _ in batch], [t for _, t in batch])


def _make_sut(lg: Any, scenario: str, predict: Predict, s: HarnessSettings, n: int) -> _Sut:
    if scenario == SERVER:
        return _BatchingSut(lg, predict, s, n)
    return _InlineSut(lg, predict, s, n, offline=scenario == OFFLINE)


# -- signals --------------------------------------------------------------------------------------


@dataclass
class _Caught:
    signum: int | None = None


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[_Caught]:
    """While inside, SIGINT and SIGTERM call `stop` and are remembered instead of raising in
    the middle of LoadGen's C++ stack (a Python exception cannot cross it); the caller raises
    after LoadGen returns. Outside the main thread signals stay with whoever owns them."""
    caught = _Caught()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if caught.signum is None:
            caught.signum = signum
        stop()

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield caught
    finally:
        for signum, old in previous.items():  # None: a handler not installed from Python
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def raise_caught(caught: _Caught) -> None:
    if caught.signum == signal.SIGINT:
        raise KeyboardInterrupt
    if caught.signum == signal.SIGTERM:
        raise Terminated()


# -- one run ------------------------------------------------------------------------------------


def run_loadgen(
    scenario: str,
    predict: Predict,
    n_samples: int,
    settings: HarnessSettings,
    log_dir: Path,
) -> LoadgenRun:
    """One LoadGen performance run of `predict` over a sample library of `n_samples` images;
    LoadGen's logs are written to `log_dir` (created) and read back.

    A signal stops the run promptly and raises KeyboardInterrupt (SIGINT) or Terminated
    (SIGTERM) once LoadGen has returned; a model call that raised is raised the same way."""
    import mlperf_loadgen as lg

    if n_samples < 1:
        raise ValueError("the sample library needs at least one image")
    log_dir.mkdir(parents=True, exist_ok=True)
    ts, values = test_settings(lg, scenario, settings)
    sut = _make_sut(lg, scenario, predict, settings, n_samples)
    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.log_output.copy_detail_to_stdout = False
    log.enable_trace = False
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    qsl = lg.ConstructQSL(n_samples, n_samples, _no_samples, _no_samples)
    try:
        with stop_on_signals(sut.stop) as caught:
            sut.drive(lambda: lg.StartTestWithLogSettings(handle, qsl, ts, log, ""))
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
    raise_caught(caught)
    if sut.error is not None:
        raise sut.error
    return _result(scenario, settings, values, sut, log_dir)


def _no_samples(_indices: list[int]) -> None:
    """The images are in the caller's memory already: nothing to load or unload."""


def read_detail(log_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """LoadGen's detail log as {key: value} (the last of each key), and its errors."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    path = log_dir / DETAIL_LOG
    if not path.is_file():
        return values, errors
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(MLLOG):
            continue
        try:
            entry = json.loads(line[len(MLLOG) :])
        except json.JSONDecodeError:
            continue
        key, value = entry.get("key"), entry.get("value")
        if not isinstance(key, str):
            continue
        values[key] = value
        if (entry.get("metadata") or {}).get("is_error"):
            errors.append(str(value).strip())
    return values, errors


SUMMARY_KEYS = {  # the summary's line -> the detail log's key (its fallback)
    "Result is": "result_validity",
    "Performance constraints satisfied": "result_perf_constraints_met",
    "Min duration satisfied": "result_min_duration_met",
    "Min queries satisfied": "result_min_queries_met",
    "Early stopping satisfied": "early_stopping_met",
    "Completed samples per second": "result_completed_samples_per_sec",
    "Samples per second": "result_samples_per_second",
    "QPS w/ loadgen overhead": "result_qps_with_loadgen_overhead",
    "Max latency (ns)": "result_max_latency_ns",
    "Mean latency (ns)": "result_mean_latency_ns",
    "50.00 percentile latency (ns)": "result_50.00_percentile_latency_ns",
    "90.00 percentile latency (ns)": "result_90.00_percentile_latency_ns",
    "99.00 percentile latency (ns)": "result_99.00_percentile_latency_ns",
}


def read_summary(log_dir: Path) -> dict[str, Any]:
    """The summary log's figures under the detail log's keys (when the detail log is absent)."""
    path = log_dir / SUMMARY_LOG
    values: dict[str, Any] = {}
    if not path.is_file():
        return values
    for line in path.read_text(errors="replace").splitlines():
        name, sep, text = line.partition(":")
        key = SUMMARY_KEYS.get(name.strip())
        if not sep or key is None:
            continue
        text = text.strip()
        if text in ("Yes", "NO"):
            values[key] = text == "Yes"
        elif text in ("VALID", "INVALID"):
            values[key] = text
        else:
            try:
                values[key] = float(text)
            except ValueError:
                continue
    return values


def _ms(values: dict[str, Any], key: str) -> float | None:
    v = values.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        return None
    return v / 1e6


def latencies(values: dict[str, Any], per_query: bool) -> LatencyPercentiles | None:
    """LoadGen's latency figures in ms (multi stream: per query, the frame's latency)."""
    infix = "_per_query" if per_query else ""
    mean_key = "result_mean_query_latency_ns" if per_query else "result_mean_latency_ns"
    max_key = "result_max_query_latency_ns" if per_query else "result_max_latency_ns"
    figures = [
        _ms(values, mean_key),
        *(
            _ms(values, f"result_{p}_percentile{infix}_latency_ns")
            for p in ("50.00", "90.00", "99.00")
        ),
        _ms(values, max_key),
    ]
    if any(f is None for f in figures):
        return None
    mean, p50, p90, p99, top = (float(f) for f in figures if f is not None)
    return LatencyPercentiles(mean=mean, p50=p50, p90=p90, p99=p99, max=top)


def _result(
    scenario: str,
    s: HarnessSettings,
    values_set: dict[str, Any],
    sut: _Sut,
    log_dir: Path,
) -> LoadgenRun:
    values, errors = read_detail(log_dir)
    if "result_validity" not in values:
        values = read_summary(log_dir) | values
    if "result_validity" not in values:
        raise MeasurementError(
            f"LoadGen wrote no result to {log_dir} (neither {DETAIL_LOG} nor {SUMMARY_LOG})"
        )
    k = s.faces_per_frame
    queries = int(values.get("result_query_count") or 0)
    if scenario == OFFLINE:
        samples = int(values.get("generated_samples_per_query") or 0) * queries
    elif scenario in (MULTI_STREAM, SERVER):
        samples = queries * k
    else:
        samples = queries
    duration = (
        sut.last_done - sut.first_issue
        if sut.first_issue is not None and sut.last_done is not None
        else 0.0
    )
    lat = latencies(values, per_query=scenario == MULTI_STREAM)
    deadline_s = s.deadline_ms / 1e3
    if scenario == SERVER and isinstance(values.get("result_overlatency_query_count"), int):
        late = int(values["result_overlatency_query_count"])
    elif scenario == OFFLINE:
        late = 0  # no deadline: one query of every sample
    else:
        # timed here, from the system under test's receipt of each query (not LoadGen's
        # scheduled issue time): LoadGen's own delay in issuing is not counted
        late = sum(1 for t in sut.latencies_s if t > deadline_s)
    percentile = TARGET_PERCENTILE[scenario]
    checks: dict[str, Any] = {
        "min duration": values.get("result_min_duration_met"),
        "min queries": values.get("result_min_queries_met"),
    }
    if scenario == SERVER:  # LoadGen writes its latency verdict for Server only
        perf = values.get("result_perf_constraints_met")
        checks["performance constraint"] = perf if isinstance(perf, bool) else None
    if percentile is not None:  # ours, every scenario with a deadline, mlperf mode included
        checks["deadline"] = _deadline_met(lat, percentile, s.deadline_ms)
    early_met = values.get("early_stopping_met")
    loadgen_valid = values.get("result_validity") == "VALID"
    if s.mlperf:  # LoadGen's verdict (early stopping included), and the deadline held
        valid = loadgen_valid and checks.get("deadline", True) is True
    else:
        valid = all(v is True for v in checks.values())
    reasons = _reasons(scenario, s, values, errors, checks, lat, late, queries)
    early_text = " ".join(str(values.get("early_stopping_result") or "").split()) or None
    if s.mlperf and early_met is False:
        reasons.append(f"early stopping not satisfied: {early_text or 'no detail'}")
    if valid:
        reasons = []
    return LoadgenRun(
        scenario=scenario,
        valid=valid,
        invalid_reasons=reasons,
        latency_ms=lat,
        queries=queries,
        samples=samples,
        duration_s=duration,
        achieved_qps=_achieved(scenario, values, queries, duration),
        target_qps=s.server_qps if scenario == SERVER else None,
        target_latency_ms=None if scenario == OFFLINE else s.deadline_ms,
        target_percentile=percentile,
        streams=s.streams if scenario == SERVER else None,
        batch_sizes={str(b): n for b, n in sorted(sut.batch_sizes.items())},
        late=late,
        mlperf=s.mlperf,
        settings=values_set
        | (
            {"batch_window_ms": s.batch_window_ms, "max_batch": s.max_batch}
            if scenario == SERVER
            else {}
        )
        | ({"max_batch": s.max_batch} if scenario == OFFLINE else {}),
        log_dir=str(log_dir),
        loadgen_valid=loadgen_valid,
        early_stopping_met=early_met if isinstance(early_met, bool) else None,
        early_stopping=early_text,
        early_stopping_latency_ms=_early_latency(scenario, values),
    )


def _early_latency(scenario: str, values: dict[str, Any]) -> float | None:
    """LoadGen's early-stopping estimate of the scenario's percentile (single stream p90,
    multi stream p99): the figure an MLPerf result states; 0 in the log means none."""
    key = {SINGLE_STREAM: "early_stopping_latency_ss", MULTI_STREAM: "early_stopping_latency_ms"}
    v = _ms(values, key[scenario]) if scenario in key else None
    return v if v else None


def _achieved(scenario: str, values: dict[str, Any], queries: int, duration: float) -> float | None:
    """Completed per second: single/multi stream queries, server frames, offline images."""
    key = {
        SINGLE_STREAM: "result_qps_with_loadgen_overhead",
        SERVER: "result_completed_samples_per_sec",
        OFFLINE: "result_samples_per_second",
    }.get(scenario)
    v = values.get(key) if key else None
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
        return float(v)
    if scenario == MULTI_STREAM and duration > 0:
        return queries / duration
    return None


def _percentile_ms(lat: LatencyPercentiles, percentile: float) -> float:
    return lat.p90 if percentile == 0.9 else lat.p99


def _deadline_met(
    lat: LatencyPercentiles | None, percentile: float, deadline_ms: float
) -> bool | None:
    """The scenario's percentile (single stream p90, multi stream and server p99) within the
    deadline; None: no latency figures to hold to it."""
    if lat is None:
        return None
    return _percentile_ms(lat, percentile) <= deadline_ms


def _reasons(
    scenario: str,
    s: HarnessSettings,
    values: dict[str, Any],
    errors: list[str],
    checks: dict[str, Any],
    lat: LatencyPercentiles | None,
    late: int,
    queries: int,
) -> list[str]:
    reasons: list[str] = []
    percentile = TARGET_PERCENTILE[scenario]
    deadline = checks.get("deadline")
    perf = checks.get("performance constraint", True)
    if percentile is not None and lat is not None and deadline is False:
        reasons.append(
            f"p{percentile * 100:g} latency {_percentile_ms(lat, percentile):.3g} ms is over "
            f"the {s.deadline_ms:.3g} ms deadline ({late} of {queries} frames late)"
        )
    elif perf is False:
        reasons.append(
            f"LoadGen: p99 latency over the {s.deadline_ms:.3g} ms deadline by its own count "
            f"({late} of {queries} frames late)"
        )
    if percentile is not None and deadline is None:
        reasons.append("no latency figures: the deadline could not be checked")
    if perf is None:
        reasons.append("LoadGen did not state whether its latency constraint was met")
    if checks["min duration"] is not True:
        reasons.append("min duration not satisfied: LoadGen stopped issuing before it")
    if checks["min queries"] is not True:
        reasons.append("min queries not satisfied: the test exited early")
    reasons += [f"LoadGen: {e}" for e in errors]
    invalid = str(values.get("result_invalid_reason") or "").strip()
    if invalid:
        reasons.append(f"LoadGen: {' '.join(invalid.split())}")
    return reasons

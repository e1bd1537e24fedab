"""The LoadGen harness with fake systems under test: queueing theory, single-stream latency,
dynamic batching, deadlines, signals, errors, and the settings each mode applies.

Service times are milliseconds and runs a fraction of a second to a few seconds, so LoadGen's
own timing runs for real; the fake sleeps most of its service time and spins the last part,
so it holds its time to a few microseconds without holding the GIL for long."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from emobench.errors import Terminated
from emobench.results.stream import LoadgenRun
from emobench.scenarios.stream import harness as H
from emobench.scenarios.stream.harness import HarnessSettings, run_loadgen
from emobench.scenarios.stream.search import max_streams

pytest.importorskip("mlperf_loadgen")

N = 64  # images in the fake sample library
SPIN_S = 0.0003  # the fake spins its last 0.3 ms (sleep alone overshoots by ~0.1 ms)
# M/D/1 (tests below): the measured mean latency must be within this share of the theory,
# plus HARNESS_MS at most above it: LoadGen waking its issuing thread at the scheduled time
# and the hand-off to the batching thread (each about 0.1 ms on an idle core)
MD1_TOLERANCE = 0.10
HARNESS_MS = 1.0  # what LoadGen's wake-up and the thread hand-off may add (0.3 ms measured idle)


def service(
    seconds: Callable[[int], float], calls: list[list[int]] | None = None
) -> Callable[[list[int]], None]:
    """A fake model: `seconds(batch size)` of work per call."""

    def predict(indices: list[int]) -> None:
        end = time.perf_counter() + seconds(len(indices))
        left = end - time.perf_counter() - SPIN_S
        if left > 0:
            time.sleep(left)
        while time.perf_counter() < end:
            pass
        if calls is not None:
            calls.append(list(indices))

    return predict


def fixed(s: float) -> Callable[[int], float]:
    return lambda _n: s


@pytest.mark.parametrize("rho", [0.3, 0.6])
def test_server_reproduces_md1_queueing(rho: float, tmp_path: Path) -> None:
    """Poisson arrivals at rate lambda, a fixed service time S, one frame per batch: LoadGen's
    mean latency is M/D/1's S + rho S / (2 (1 - rho)), rho = lambda S. The harness adds no
    queue of its own and no timing error beyond HARNESS_MS."""
    s = 0.003
    settings = HarnessSettings(
        deadline_ms=1000, max_batch=1, batch_window_ms=0, probe_s=2.5, target_qps=rho / s
    )
    run = run_loadgen("server", service(fixed(s)), N, settings, tmp_path)
    theory_ms = (s + rho * s / (2 * (1 - rho))) * 1e3
    assert run.latency_ms is not None
    measured = run.latency_ms.mean
    figures = f"rho {rho}: measured {measured:.3f} ms, M/D/1 {theory_ms:.3f} ms"
    print(figures)
    assert run.valid, run.invalid_reasons
    assert run.batch_sizes == {"1": run.queries}
    assert run.queries > 0.8 * rho / s * 2.5
    assert theory_ms * (1 - MD1_TOLERANCE) <= measured, figures
    assert measured <= theory_ms * (1 + MD1_TOLERANCE) + HARNESS_MS, figures
    assert run.target_qps == pytest.approx(rho / s)
    assert run.target_percentile == 0.99 and run.late == 0


def test_single_stream_latency_is_the_service_time(tmp_path: Path) -> None:
    s = 0.003
    settings = HarnessSettings(deadline_ms=1000 / 30, probe_s=0.6, expected_latency_ms=1.5)
    run = run_loadgen("single-stream", service(fixed(s)), N, settings, tmp_path)
    assert run.valid and run.invalid_reasons == []
    assert run.latency_ms is not None
    assert s * 1e3 <= run.latency_ms.p50 <= s * 1e3 * (1 + MD1_TOLERANCE) + HARNESS_MS
    assert run.queries >= 0.6 / 0.0045
    assert run.samples == run.queries and run.batch_sizes == {"1": run.queries}
    assert run.target_percentile == 0.9 and run.target_latency_ms == pytest.approx(1000 / 30)
    assert run.achieved_qps is not None and 150 < run.achieved_qps < 1000 / 3
    assert run.duration_s >= 0.6 and not run.mlperf
    # LoadGen's own verdict needs early stopping's 64 queries at p90: held here, reported
    assert run.loadgen_valid is True and run.early_stopping_met is True
    assert run.early_stopping_latency_ms is not None and run.early_stopping_latency_ms >= 3
    assert (tmp_path / H.SUMMARY_LOG).is_file() and run.log_dir == str(tmp_path)


def test_a_system_that_misses_the_deadline_is_invalid_and_serves_zero_streams(
    tmp_path: Path,
) -> None:
    """60 ms a frame against a 33 ms deadline: every probe INVALID, 0 streams, no error."""
    runs = []

    def probe(streams: int) -> bool:
        settings = HarnessSettings(
            deadline_ms=1000 / 30, streams=streams, max_batch=1, batch_window_ms=0, probe_s=0.2
        )
        runs.append(run_loadgen("server", service(fixed(0.06)), N, settings, tmp_path / "s"))
        return runs[-1].valid

    assert max_streams(probe, 64) == (0, 1)
    assert [run.streams for run in runs] == [1, 1]  # the first invalid count, probed twice
    for run in runs:
        assert not run.valid and run.streams == 1 and run.target_qps == 30
        assert run.late == run.queries > 0
        assert run.latency_ms is not None and run.latency_ms.p99 > 60
        assert any("deadline" in r for r in run.invalid_reasons)


def test_an_overloaded_server_run_is_cut_at_its_backlog_bound(tmp_path: Path) -> None:
    """Three times the capacity: LoadGen stops issuing at the backlog bound, well before its
    schedule ends, and says so; the run is INVALID."""
    settings = HarnessSettings(
        deadline_ms=10, target_qps=600, max_batch=1, batch_window_ms=0, probe_s=2.0
    )
    run = run_loadgen("server", service(fixed(0.005)), N, settings, tmp_path)
    assert not run.valid
    assert run.queries < 600 * 2.0  # stopped at the backlog bound, before its schedule ended
    bound = H.backlog_bound(600, 0.01, 2.0, H.DEFAULT_MIN_QUERIES)
    assert run.settings["server_max_async_queries"] == bound
    assert any("outstanding" in r.lower() for r in run.invalid_reasons), run.invalid_reasons


def test_dynamic_batching_fills_batches_under_load_and_runs_single_frames_when_idle(
    tmp_path: Path,
) -> None:
    cost = lambda n: 0.001 + 0.0002 * n  # noqa: E731 - batch of 4: 1.8 ms, 2200 frames/s
    # 2000 frames/s: batches of 3 serve 1875/s at most, so the queue keeps 4 frames waiting
    busy = HarnessSettings(deadline_ms=100, target_qps=2000, max_batch=4, probe_s=0.5)
    run = run_loadgen("server", service(cost), N, busy, tmp_path / "busy")
    sizes = {int(k): v for k, v in run.batch_sizes.items()}
    assert max(sizes) == 4
    assert sizes[4] * 4 > 0.5 * sum(k * v for k, v in sizes.items())  # most frames in full ones
    assert run.valid

    idle = HarnessSettings(
        deadline_ms=100, target_qps=40, max_batch=4, batch_window_ms=5, probe_s=0.5
    )
    run = run_loadgen("server", service(cost), N, idle, tmp_path / "idle")
    # 40 frames/s: another frame arrives within a 5 ms window 18% of the time
    assert run.batch_sizes["1"] >= 0.75 * run.queries
    assert set(run.batch_sizes) <= {"1", "2"}
    assert run.latency_ms is not None
    # a lone frame waits out the window, then runs alone (1.2 ms)
    assert 5 + 1.2 <= run.latency_ms.p50 <= 5 + 1.2 + 2
    assert run.settings["batch_window_ms"] == 5 and run.settings["max_batch"] == 4


def test_server_frames_carry_their_faces_in_one_batch(tmp_path: Path) -> None:
    calls: list[list[int]] = []
    threads: set[int] = set()
    model = service(fixed(0.0005), calls)

    def predict(indices: list[int]) -> None:
        threads.add(threading.get_ident())
        model(indices)

    settings = HarnessSettings(
        deadline_ms=100, streams=20, fps=30, faces_per_frame=3, max_batch=8, probe_s=0.3
    )
    run = run_loadgen("server", predict, N, settings, tmp_path)
    assert threads == {threading.get_ident()}  # the model runs on the caller's thread
    assert run.valid and run.samples == 3 * run.queries and run.target_qps == 600
    assert set(run.batch_sizes) <= {"3", "6"}  # whole frames, at most 8 // 3 = 2 of them
    for batch in calls:
        for i in range(0, len(batch), 3):
            first = batch[i]
            assert batch[i : i + 3] == [(first + j) % N for j in range(3)]


def test_multi_stream_runs_each_query_as_one_batch(tmp_path: Path) -> None:
    settings = HarnessSettings(
        deadline_ms=100, faces_per_frame=4, probe_s=0.3, expected_latency_ms=1
    )
    run = run_loadgen("multi-stream", service(fixed(0.002)), N, settings, tmp_path)
    assert run.valid and run.batch_sizes == {"4": run.queries}
    assert run.samples == 4 * run.queries
    assert run.settings["multi_stream_samples_per_query"] == 4
    assert run.latency_ms is not None and 2 <= run.latency_ms.p50 <= 2 + 1
    assert run.target_percentile == 0.99


def test_offline_runs_batches_of_max_batch(tmp_path: Path) -> None:
    cost = lambda n: 0.0005 * n  # noqa: E731 - 2000 images/s
    settings = HarnessSettings(deadline_ms=100, max_batch=8, probe_s=0.3, expected_qps=3000)
    run = run_loadgen("offline", service(cost), N, settings, tmp_path)
    assert run.valid, run.invalid_reasons
    assert run.queries == 1 and run.samples == round(1.1 * 0.3 * 3000)
    assert run.batch_sizes["8"] == run.samples // 8
    assert run.achieved_qps is not None and 1000 < run.achieved_qps < 2100
    assert run.target_latency_ms is None and run.target_percentile is None and run.late == 0


def test_a_failing_model_call_is_raised_after_loadgen_returns(tmp_path: Path) -> None:
    calls = 0

    def predict(_indices: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ValueError("the model broke")

    settings = HarnessSettings(deadline_ms=100, streams=10, probe_s=0.5)
    with pytest.raises(ValueError, match="the model broke"):
        run_loadgen("server", predict, N, settings, tmp_path)
    assert calls == 3  # the run ended at the model's error, not after its schedule
    with pytest.raises(ValueError, match="the model broke"):
        calls = 0
        run_loadgen("single-stream", predict, N, settings, tmp_path)


@pytest.mark.parametrize(
    ("scenario", "signum", "raised"),
    [
        ("server", signal.SIGINT, KeyboardInterrupt),
        ("single-stream", signal.SIGTERM, Terminated),
    ],
)
def test_a_signal_stops_loadgen_promptly_and_raises_after(
    scenario: str, signum: int, raised: type[BaseException], tmp_path: Path
) -> None:
    """The signal's handler only flags the run: the system under test completes (or, in the
    server, holds until LoadGen flushes) every query without the model, LoadGen returns long
    before its 5 s, the handlers in place before are back, then the signal's exception."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    calls: list[list[int]] = []
    settings = HarnessSettings(deadline_ms=100, streams=4, probe_s=5.0, expected_latency_ms=2)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signum))
    timer.start()
    try:
        with pytest.raises(raised):
            run_loadgen(scenario, service(fixed(0.004), calls), N, settings, tmp_path)
    finally:
        timer.cancel()
    ran = len(calls)
    assert 0 < ran < 0.5 / 0.004 + 5  # the model stopped with the signal
    assert {s: signal.getsignal(s) for s in before} == before


def test_settings_default_mode_and_mlperf_rules() -> None:
    lg = pytest.importorskip("mlperf_loadgen")
    default = HarnessSettings(deadline_ms=1000 / 30, streams=2, probe_s=1.5)
    _, values = H.test_settings(lg, "server", default)
    assert values["min_duration_ms"] == 1500
    assert values["min_query_count"] == H.DEFAULT_MIN_QUERIES
    assert values["max_duration_ms"] == 1500 * H.DEFAULT_MAX_DURATION_FACTOR
    assert values["server_target_qps"] == 60
    assert values["server_target_latency_ns"] == round(1e9 / 30)
    assert values["server_target_latency_percentile"] == 0.99
    assert values["schedule_rng_seed"] == 16159082839903944936  # mlperf.conf's

    rules = HarnessSettings(deadline_ms=1000 / 30, faces_per_frame=8, mlperf=True)
    for scenario, queries in H.MLPERF_MIN_QUERIES.items():
        if scenario == "server":
            rules = HarnessSettings(**{**rules.__dict__, "streams": 1})
        ts, values = H.test_settings(lg, scenario, rules)
        assert values["min_duration_ms"] == 600_000 and ts.min_duration_ms == 600_000
        assert values["min_query_count"] == queries and values["max_duration_ms"] == 0
    _, values = H.test_settings(lg, "single-stream", rules)
    assert values["single_stream_target_latency_percentile"] == 0.9
    _, values = H.test_settings(lg, "multi-stream", rules)
    assert values["multi_stream_samples_per_query"] == 8
    assert values["multi_stream_target_latency_percentile"] == 0.99


def test_backlog_bound_leaves_room_for_a_deadline_of_arrivals_and_one_percent() -> None:
    # 30 frames/s, 33 ms, 2 s: 1% of at most 60 + 6 sqrt(60) = 106.5 frames (2) and one more,
    # a deadline's 0.99 + 6 sqrt(0.99) (7), 10 to spare
    assert H.backlog_bound(30, 0.033, 2.0, 16) == 2 + 1 + 7 + 10
    assert H.backlog_bound(3000, 1 / 30, 600, 100) > 0.01 * 3000 * 600 + 100
    assert H.backlog_bound(60, 0.033, 2, 16) < H.backlog_bound(120, 0.033, 2, 16)


def test_the_summary_log_stands_in_for_a_missing_detail_log(tmp_path: Path) -> None:
    settings = HarnessSettings(deadline_ms=100, probe_s=0.2, expected_latency_ms=0.5)
    run = run_loadgen("single-stream", service(fixed(0.001)), N, settings, tmp_path)
    detail, _ = H.read_detail(tmp_path)
    summary = H.read_summary(tmp_path)
    assert summary["result_validity"] == detail["result_validity"] == "VALID"
    lat = H.latencies(summary, per_query=False)
    assert lat == run.latency_ms
    assert summary["early_stopping_met"] is True


@pytest.mark.parametrize(
    ("scenario", "faces", "name"), [("single-stream", 1, "p90"), ("multi-stream", 2, "p99")]
)
def test_single_and_multi_stream_over_the_deadline_are_invalid(
    scenario: str, faces: int, name: str, tmp_path: Path
) -> None:
    """LoadGen states no latency verdict for these scenarios (its run is VALID): 3 ms a
    query against a 1 ms deadline is INVALID by our check of the scenario's percentile."""
    settings = HarnessSettings(
        deadline_ms=1, faces_per_frame=faces, probe_s=0.2, expected_latency_ms=1.5
    )
    run = run_loadgen(scenario, service(fixed(0.003)), N, settings, tmp_path)
    if scenario == "single-stream":  # LoadGen's own verdict ignores the deadline
        assert run.loadgen_valid is True  # (multi stream's lacks early stopping's 662 queries)
    assert not run.valid
    assert run.late == run.queries > 0
    reason = run.invalid_reasons[0]
    assert reason.startswith(f"{name} latency ") and "is over the 1 ms deadline" in reason


def write_detail(log_dir: Path, values: dict[str, object]) -> None:
    lines = [H.MLLOG + json.dumps({"key": k, "value": v}) for k, v in values.items()]
    (log_dir / H.DETAIL_LOG).write_text("\n".join(lines) + "\n")


def server_values(p99_ms: float, **extra: object) -> dict[str, object]:
    figures = {"mean": 5.0, "50.00": 5.0, "90.00": 8.0, "99.00": p99_ms, "max": p99_ms + 1}
    values: dict[str, object] = {
        "result_validity": "VALID",
        "result_min_duration_met": True,
        "result_min_queries_met": True,
        "result_query_count": 200,
        "result_overlatency_query_count": 0,
        "result_mean_latency_ns": figures["mean"] * 1e6,
        "result_max_latency_ns": figures["max"] * 1e6,
    }
    for p in ("50.00", "90.00", "99.00"):
        values[f"result_{p}_percentile_latency_ns"] = figures[p] * 1e6
    return values | extra


def server_result(tmp_path: Path, values: dict[str, object]) -> LoadgenRun:
    write_detail(tmp_path, values)
    sut = SimpleNamespace(first_issue=0.0, last_done=1.0, latencies_s=[], batch_sizes=Counter())
    s = HarnessSettings(deadline_ms=10, streams=2)
    return H._result("server", s, {}, sut, tmp_path)  # type: ignore[arg-type]


def test_a_server_run_without_loadgens_latency_verdict_is_not_valid(tmp_path: Path) -> None:
    run = server_result(tmp_path, server_values(p99_ms=9.0))
    assert not run.valid
    assert run.invalid_reasons == ["LoadGen did not state whether its latency constraint was met"]
    run = server_result(tmp_path, server_values(9.0, result_perf_constraints_met=True))
    assert run.valid and run.invalid_reasons == []


def test_a_server_run_is_held_to_its_p99_as_well_as_loadgens_verdict(tmp_path: Path) -> None:
    values = server_values(12.0, result_perf_constraints_met=True)
    run = server_result(tmp_path, values)
    assert not run.valid and run.latency_ms is not None and run.latency_ms.p99 == 12
    assert run.invalid_reasons == [
        "p99 latency 12 ms is over the 10 ms deadline (0 of 200 frames late)"
    ]

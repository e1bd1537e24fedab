"""`emobench stream`'s search and scenario: the max-streams search against fake probes of known
capacity, and run_stream on tiny models through LoadGen (short probes, one thread)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

import emobench.scenarios.stream.run as stream_run
from emobench.errors import UsageError
from emobench.results.io import to_json
from emobench.results.stream import LoadgenRun
from emobench.scenarios.stream.search import SearchCut, max_streams
from emobench.scenarios.stream.settings import StreamConfig
from tests.conftest import tiny_model

# -- the search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 2, 3, 5, 17, 63, 64, 100, 4095, 4096])
def test_search_finds_a_known_capacity_to_one_stream(capacity: int) -> None:
    probed: list[int] = []

    def probe(streams: int) -> bool:
        probed.append(streams)
        return streams <= capacity

    assert max_streams(probe, 4096) == (capacity, 1)
    assert probed[0] == 1
    assert len(probed) <= 2 * math.ceil(math.log2(4096)) + 3
    # the first invalid count alone is probed twice
    first_bad = next((n for n in probed if n > capacity), None)
    assert [n for n in set(probed) if probed.count(n) > 1] == ([first_bad] if first_bad else [])


def test_search_doubles_then_bisects() -> None:
    probed: list[int] = []

    def probe(streams: int) -> bool:
        probed.append(streams)
        return streams <= 11

    assert max_streams(probe, 100) == (11, 1)
    assert probed == [1, 2, 4, 8, 16, 16, 12, 10, 11]


def test_one_failed_probe_of_a_count_does_not_end_the_search() -> None:
    """An outlier frame fails the first probe of 4 streams: the rerun is valid and the search
    goes on to the true capacity (11); a later invalid count is not rerun."""
    probed: list[int] = []

    def probe(streams: int) -> bool:
        probed.append(streams)
        if streams == 4 and probed.count(4) == 1:
            return False
        return streams <= 11

    assert max_streams(probe, 100) == (11, 1)
    assert probed == [1, 2, 4, 4, 8, 16, 12, 10, 11]


def test_search_stops_at_its_ceiling() -> None:
    assert max_streams(lambda n: True, 6) == (6, 1)
    assert max_streams(lambda n: n <= 5, 6) == (5, 1)
    with pytest.raises(ValueError):
        max_streams(lambda n: True, 0)


def test_a_cut_search_returns_its_last_valid_count_as_a_lower_bound() -> None:
    calls = 0

    def probe(streams: int) -> bool:
        nonlocal calls
        calls += 1
        if calls > 4:
            raise SearchCut()
        return streams <= 300

    # 1, 2, 4, 8 valid, then cut: 8 streams at least, up to 1000 unknown above
    assert max_streams(probe, 1000) == (8, 992)

    calls = 0

    def bisecting(streams: int) -> bool:
        nonlocal calls
        calls += 1
        if calls > 7:
            raise SearchCut()
        return streams <= 20

    # 1 .. 16 valid, 32 invalid twice, then cut: 16 at least, resolution 16
    assert max_streams(bisecting, 1000) == (16, 16)


# -- run_stream ---------------------------------------------------------------------------------


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    monkeypatch.setattr(stream_run, "build_model", tiny_model)


def config(**kw: object) -> StreamConfig:
    base: dict[str, object] = {
        "device": "cpu",
        "probe_s": 0.3,
        "max_streams": 4,
        "threads": 1,
        "time_budget_s": 60.0,
    }
    return StreamConfig(**(base | kw))  # type: ignore[arg-type]


def test_run_stream_measures_single_stream_and_the_server_search(
    tiny: None, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, int]] = []
    logs = tmp_path / "loadgen"
    report = stream_run.run_stream(
        config(scenarios=("single-stream", "server")),
        progress=lambda what, done, total: seen.append((what, done, total)),
        log_root=logs,
    )
    assert report.kind == "stream" and report.results == []
    summary = report.stream
    assert summary is not None
    assert summary.deadline_ms == pytest.approx(1000 / 30) and summary.fps == 30
    assert summary.loadgen_version and summary.max_batch == 8 and not summary.mlperf
    assert [(r.scenario, r.pipeline) for r in summary.results] == [
        ("single-stream", "upscale224"),
        ("single-stream", "direct48"),
        ("server", "upscale224"),
        ("server", "direct48"),
    ]
    for r in summary.results:
        assert r.error is None and r.runtime == "torch" and r.backbone == "resnet18"
        for run in r.runs:
            assert run.log_dir is not None
            assert Path(run.log_dir).parent == logs
            assert (Path(run.log_dir) / "mlperf_log_summary.txt").is_file()
            assert run.latency_ms is not None and run.queries >= 16
    single = summary.result("resnet18", "direct48", "single-stream")
    assert single is not None and len(single.runs) == 1 and single.max_streams is None
    assert single.runs[0].valid and single.runs[0].batch_sizes == {"1": single.runs[0].queries}
    assert single.runs[0].target_percentile == 0.9
    # a tiny model serves 4 x 30 frames/s easily: every probe valid up to the ceiling
    server = summary.result("resnet18", "upscale224", "server")
    assert server is not None
    assert [run.streams for run in server.runs] == [1, 2, 4]
    assert server.max_streams == 4 and server.search_resolution == 1
    assert all(run.valid and run.target_qps == run.streams * 30 for run in server.runs)
    assert {p.name for p in logs.iterdir()} == {
        "upscale224-single-stream",
        "direct48-single-stream",
        *(f"{p}-server-{n}" for p in ("upscale224", "direct48") for n in (1, 2, 4)),
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging gone
    assert any("ceiling" in n for n in summary.notes)
    assert any("arrivals are Poisson" in n and "pessimistic" in n for n in summary.notes)
    # a 0.3 s probe at 1 stream holds its 16 queries: their p99 is their maximum
    for r in summary.results:
        for run in r.runs:
            if r.scenario == "server" and run.queries < 100:
                assert any(
                    f"p99 of {run.queries} frames is their maximum ({run.streams} streams)" in n
                    for n in summary.notes
                )
    assert any(n.startswith("not MLPerf-style") for n in summary.notes)
    assert report.config["resolved_device"] == "cpu" and report.config["threads_in_force"] == 1
    # progress: builds, then each LoadGen run, then done
    assert seen[0][0] == "resnet18/upscale224: build, warm every batch size"
    assert seen[-1] == ("done", len(seen) - 1, len(seen) - 1)
    assert sum("server," in what for what, _, _ in seen) == 6
    json.loads(to_json(report))  # every field serialisable


def test_run_stream_without_log_root_keeps_no_logs(tiny: None) -> None:
    report = stream_run.run_stream(config(scenarios=("multi-stream",), faces_per_frame=3))
    assert report.stream is not None
    for r in report.stream.results:
        [run] = r.runs
        assert run.log_dir is None and run.samples == 3 * run.queries
        assert run.batch_sizes == {"3": run.queries}


def test_a_pipeline_that_fails_to_build_is_its_error_the_other_is_measured(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(backbone: str, pipeline: str, **kw: object) -> object:
        if pipeline == "direct48":
            raise RuntimeError("no such layer")
        return tiny_model(backbone, pipeline)

    monkeypatch.setattr(stream_run, "build_model", build)
    report = stream_run.run_stream(config(scenarios=("single-stream",)))
    assert report.stream is not None
    up, direct = report.stream.results
    assert up.error is None and up.runs[0].valid
    assert direct.error == "no such layer" and direct.runs == []


def test_an_interrupted_run_leaves_no_logs(
    tiny: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = stream_run.run_loadgen
    calls = 0

    def interrupted(*args: object, **kw: object) -> LoadgenRun:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(stream_run, "run_loadgen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stream_run.run_stream(config(scenarios=("single-stream",)), log_root=tmp_path / "logs")
    assert list(tmp_path.iterdir()) == []


def test_a_search_cut_by_the_budget_reports_a_lower_bound(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fake server run takes 0.2 s and a capacity of 1000 streams needs ~20 of them: a
    2.5 s budget cuts the search, which says so and reports the last valid count."""

    def fake(scenario: str, predict: object, n: int, settings: object, log_dir: Path) -> LoadgenRun:
        streams = settings.streams  # type: ignore[attr-defined]
        time.sleep(0.2)
        return LoadgenRun(scenario, streams <= 1000, [], None, 10, 10, 0.2, 30.0, streams=streams)

    monkeypatch.setattr(stream_run, "run_loadgen", fake)
    monkeypatch.setattr(stream_run, "RUN_OVERHEAD_S", 0.0)
    report = stream_run.run_stream(
        config(
            scenarios=("server",),
            pipelines=("direct48",),
            max_streams=4096,
            time_budget_s=2.5,
            probe_s=0.15,
        )
    )
    assert report.stream is not None
    [r] = report.stream.results
    assert r.max_streams is not None and 1 <= r.max_streams < 1000
    assert r.max_streams == max(run.streams or 0 for run in r.runs if run.valid)
    assert r.search_resolution is not None and r.search_resolution > 1
    assert any("cut by --time-budget" in n and "lower bound" in n for n in report.stream.notes)


def test_a_short_budget_shortens_the_probes_and_says_so(tiny: None) -> None:
    report = stream_run.run_stream(
        config(scenarios=("single-stream",), probe_s=5.0, time_budget_s=3.0)
    )
    assert report.stream is not None
    assert report.config["probe_s_in_force"] < 5.0
    assert any("shortened" in n for n in report.stream.notes)
    for r in report.stream.results:
        assert r.error is None
        assert r.runs[0].settings["min_duration_ms"] < 5000  # the probe was shortened


def test_the_first_invalid_count_is_probed_again_and_both_runs_are_kept(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 streams fail their first run (an outlier) and pass the rerun: the search goes on to
    the capacity, 3 streams; both runs of 2 are in the report and a note says so."""
    seen: list[int] = []

    def fake(scenario: str, predict: object, n: int, settings: object, log_dir: Path) -> LoadgenRun:
        streams = settings.streams  # type: ignore[attr-defined]
        seen.append(streams)
        valid = streams <= 3 and not (streams == 2 and seen.count(2) == 1)
        return LoadgenRun(scenario, valid, [], None, 200, 200, 1.0, 30.0, streams=streams)

    monkeypatch.setattr(stream_run, "run_loadgen", fake)
    report = stream_run.run_stream(config(scenarios=("server",), pipelines=("direct48",)))
    assert report.stream is not None
    [r] = report.stream.results
    assert [run.streams for run in r.runs] == [1, 2, 2, 4, 3]
    assert [run.valid for run in r.runs] == [True, False, True, False, True]
    assert r.max_streams == 3 and r.search_resolution == 1
    [note] = [n for n in report.stream.notes if "probed twice" in n]
    assert "2 streams" in note and "the second run valid" in note
    assert "counts above it are probed once" in note
    assert not any("frames is their maximum" in n for n in report.stream.notes)  # 200 frames


@pytest.mark.parametrize(
    ("scenarios", "refused"), [(("server",), True), (("multi-stream", "offline"), False)]
)
def test_server_refuses_more_faces_per_frame_than_max_batch(
    scenarios: tuple[str, ...], refused: bool
) -> None:
    c = config(scenarios=scenarios, faces_per_frame=9, max_batch=8)
    if not refused:
        assert c.validate() is c
        return
    with pytest.raises(UsageError) as caught:
        c.validate()
    assert str(caught.value) == (
        "--faces-per-frame 9 is more than --max-batch 8: a server batch holds whole frames"
    )

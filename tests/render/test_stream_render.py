"""`stream` reports on screen and in Markdown, from hand-built reports: every LoadGen run with
its verdict, the most streams per pipeline and their ratio, single-stream p90, and whether the
runs were MLPerf-style or bounded probes. Absent figures are "—", never 0.

`stream_report` and its parts are shared with tests/readout/test_claims_stream.py and
tests/cli/test_stream.py."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from emobench.render.stream import (
    BOUNDED_TEXT,
    MLPERF_TEXT,
    Headline,
    batches_text,
    headlines,
    main_run,
    ratio_lines,
    render_stream,
    run_cells,
    server_run,
    settings_line,
    stream_markdown,
    streams_ratio,
    verdict_text,
)
from emobench.results import Report
from emobench.results.stream import (
    LatencyPercentiles,
    LoadgenRun,
    StreamResult,
    StreamSummary,
)

ENV = {
    "machine": "x86_64",
    "device": "cpu",
    "device_name": "AMD EPYC",
    "cpu_model": "AMD EPYC",
    "cpu_isa": "avx512",
    "cpu_capability": "AVX512",
    "cpu_affinity_count": 2,
    "num_threads": 2,
    "torch": "2.14.1",
}
DEADLINE_MS = 1000 / 30


def latency(p99: float) -> LatencyPercentiles:
    return LatencyPercentiles(mean=p99 / 2, p50=p99 / 2, p90=p99 * 0.8, p99=p99, max=p99 * 1.5)


def server_probe(
    streams: int, p99: float, pipeline: str = "direct48", reasons: tuple[str, ...] = ()
) -> LoadgenRun:
    """A server run at `streams` x 30 fps: VALID when p99 is within one frame."""
    valid = p99 <= DEADLINE_MS and not reasons
    if not valid and not reasons:
        reasons = (f"99.00 percentile latency ({p99 * 1e6:.0f} ns) > target latency",)
    return LoadgenRun(
        "server",
        valid,
        list(reasons),
        latency(p99),
        queries=60 * streams,
        samples=60 * streams,
        duration_s=2.0,
        achieved_qps=30.0 * streams,
        target_qps=30.0 * streams,
        target_latency_ms=DEADLINE_MS,
        target_percentile=0.99,
        streams=streams,
        batch_sizes={"1": 40 * streams, "2": 10 * streams},
        late=0 if valid else 6 * streams,
        log_dir=f"/r/s.loadgen/{pipeline}-server-{streams}",
    )


def server_result(
    pipeline: str, probes: list[tuple[int, float]], max_streams: int | None, **kw: object
) -> StreamResult:
    runs = [server_probe(n, p99, pipeline) for n, p99 in probes]
    return StreamResult(
        "resnet18", pipeline, "torch", "server", runs, max_streams, search_resolution=1, **kw
    )  # type: ignore[arg-type]


def single_result(pipeline: str, p90: float) -> StreamResult:
    run = LoadgenRun(
        "single-stream",
        True,
        [],
        LatencyPercentiles(p90 * 0.9, p90 * 0.9, p90, p90 * 1.2, p90 * 2),
        queries=400,
        samples=400,
        duration_s=2.0,
        achieved_qps=1000 / p90,
        target_latency_ms=DEADLINE_MS,
        target_percentile=0.9,
        log_dir=f"/r/s.loadgen/{pipeline}-single-stream",
    )
    return StreamResult("resnet18", pipeline, "torch", "single-stream", [run])


DN_SERVER = [(1, 4.0), (8, 20.0), (16, 60.0), (12, 30.0)]  # 12 streams: the last VALID
UP_SERVER = [(1, 25.0), (2, 40.0)]  # 1 stream


def stream_report(
    results: list[StreamResult] | None = None,
    mlperf: bool = False,
    fps: float = 30.0,
    env: dict[str, object] | None = None,
    created: str = "2026-11-25T00:00:00Z",
) -> Report:
    """A resnet18 stream report on make_report's CPU: direct48 serves 12 streams, upscale224
    one, with both single-stream runs (by default)."""
    if results is None:
        results = [
            server_result("upscale224", UP_SERVER, 1),
            server_result("direct48", DN_SERVER, 12),
            single_result("upscale224", 21.0),
            single_result("direct48", 3.0),
        ]
    summary = StreamSummary(
        fps=fps,
        deadline_ms=1000 / fps,
        faces_per_frame=1,
        max_batch=8,
        batch_window_ms=2.0,
        mlperf=mlperf,
        loadgen_version="6.0.17",
        results=results,
        notes=["synthetic images (seed 0)"],
    )
    config = {
        "backbone": "resnet18",
        "runtime": "torch",
        "device": "cpu",
        "resolved_device": "cpu",
        "deadline_ms": None,
        "probe_s": 2.0,
        "time_budget_s": 120.0,
        "mlperf": mlperf,
    }
    return Report(
        kind="stream",
        created_utc=created,
        wall_time_s=61.0,
        config=config,
        environment=dict(env or ENV),
        results=[],
        stream=summary,
    )


def _text(report: Report) -> str:
    buffer = io.StringIO()
    render_stream(report, Console(file=buffer, width=200, color_system=None))
    return buffer.getvalue()


# -- the figures -------------------------------------------------------------------------------


def test_the_headline_reads_the_run_at_max_streams_and_single_stream_p90() -> None:
    heads = {h.pipeline: h for h in headlines(stream_report().stream)}  # type: ignore[arg-type]
    assert heads["direct48"] == Headline("resnet18", "direct48", "torch", 12, 30.0, 3.0)
    assert heads["upscale224"] == Headline("resnet18", "upscale224", "torch", 1, 25.0, 21.0)
    assert streams_ratio(heads.values(), "resnet18", "torch") == 12.0


def test_zero_streams_reads_the_fewest_probed_and_has_no_ratio() -> None:
    up = server_result("upscale224", [(2, 70.0), (1, 50.0)], 0)
    run = server_run(up)
    assert run is not None and run.streams == 1 and not run.valid
    report = stream_report([up, server_result("direct48", DN_SERVER, 12)])
    heads = headlines(report.stream)  # type: ignore[arg-type]
    by = {h.pipeline: h for h in heads}
    assert by["upscale224"].max_streams == 0 and by["upscale224"].server_p99_ms == 50.0
    assert by["direct48"].single_p90_ms is None  # no single-stream run: absent, not 0
    assert streams_ratio(heads, "resnet18", "torch") is None
    assert "max streams ratio direct48 / upscale224 — " in ratio_lines(report.stream)[0]  # type: ignore[arg-type]


def test_a_failed_search_and_a_missing_pipeline_are_absent_not_zero() -> None:
    failed = server_result("direct48", [], None, error="the model raised: boom")
    report = stream_report([server_result("upscale224", UP_SERVER, 1), failed])
    by = {h.pipeline: h for h in headlines(report.stream)}  # type: ignore[arg-type]
    assert by["direct48"].max_streams is None and by["direct48"].server_p99_ms is None
    assert by["direct48"].error == "server: the model raised: boom"
    text = _text(report)
    assert "resnet18 direct48 (torch), server: failed" in text
    assert "error: the model raised: boom" in text
    only_up = stream_report([server_result("upscale224", UP_SERVER, 1)])
    assert streams_ratio(headlines(only_up.stream), "resnet18", "torch") is None  # type: ignore[arg-type]


def test_run_cells_say_the_verdict_latencies_rate_late_frames_and_batches() -> None:
    dn = server_result("direct48", DN_SERVER, 12)
    cells = [run_cells(dn, run) for run in dn.runs]
    assert cells[3][:3] == ["12 ◀ max", "360 frames/s", "VALID (720 frames)"]
    assert cells[2][0] == "16"  # invalid: never marked
    assert cells[2][2] == (
        "INVALID (960 frames): 99.00 percentile latency (60000000 ns) > target latency"
    )
    assert cells[2][3:7] == ["30.0", "48.0", "60.0", "90.0"]  # p50 p90 p99 max, ms
    assert cells[2][7:] == ["480 frames/s", "96 (10.0%)", "1x640, 2x160"]
    single = single_result("direct48", 3.0)
    assert run_cells(single, single.runs[0])[:2] == ["VALID (400 frames)", "2.70"]
    assert run_cells(single, single.runs[0])[-1] == "—"  # no batches recorded
    assert batches_text(dataclasses.replace(single.runs[0], batch_sizes={"8": 2, "10": 1})) == (
        "8x2, 10x1"
    )
    assert main_run(single) is single.runs[0]


def test_an_absent_latency_is_a_dash() -> None:
    dn = server_result("direct48", [(1, 4.0)], 1)
    empty = dataclasses.replace(dn.runs[0], latency_ms=None, achieved_qps=None, valid=False)
    cells = run_cells(dn, empty)
    assert cells[3:8] == ["—", "—", "—", "—", "—"]


# -- the report says which rules it followed ---------------------------------------------------


def test_bounded_runs_never_call_themselves_mlperf() -> None:
    text = _text(stream_report())
    assert BOUNDED_TEXT in text and "about 2 s per LoadGen run" in text
    assert MLPERF_TEXT not in text
    line = settings_line(stream_report())
    assert line.startswith("settings: 30 fps, deadline 33.3 ms (one frame at 30 fps)")
    assert "1 face per frame" in line and "up to 8 images within a 2 ms window" in line
    assert "torch on cpu; LoadGen 6.0.17" in line


def test_an_mlperf_run_says_so() -> None:
    report = stream_report(mlperf=True)
    assert MLPERF_TEXT in settings_line(report) and BOUNDED_TEXT not in settings_line(report)
    assert MLPERF_TEXT in stream_markdown(report)


def test_the_terminal_shows_every_run_and_the_headline() -> None:
    text = _text(stream_report())
    assert "resnet18 direct48 (torch), server: 12 streams within 33.3 ms at p99" in text
    assert "resnet18 upscale224 (torch), single-stream: p90 21.0 ms" in text
    assert "resnet18 upscale224 (torch), server: 1 stream within 33.3 ms at p99" in text
    assert "max streams at 30 fps (p99 <= 33.3 ms)" in text
    assert "resnet18 (torch): max streams ratio direct48 / upscale224 12.00x" in text
    assert "LoadGen's logs: /r/s.loadgen (4 runs)" in text
    assert "search resolution: 1 stream\n" in text
    cut = dataclasses.replace(server_result("direct48", DN_SERVER, 12), search_resolution=4)
    assert _text(stream_report([cut])).count("max streams is a lower bound") == 1
    assert "server: ≥12 streams within 33.3 ms at p99" in _text(stream_report([cut]))
    assert "note: synthetic images (seed 0)" in text


def test_markdown_holds_the_headline_settings_and_each_table() -> None:
    md = stream_markdown(stream_report())
    lines = md.splitlines()
    assert lines[0].startswith("| backbone | pipeline | runtime | max streams at 30 fps")
    assert "| resnet18 | direct48 | torch | 12 | 30.0 | 3.00 |" in lines
    assert "| resnet18 | upscale224 | torch | 1 | 25.0 | 21.0 |" in lines
    assert "**resnet18 direct48 (torch), server: 12 streams within 33.3 ms at p99**" in lines
    assert any(
        line.startswith("| 12 ◀ max | 360 frames/s | VALID (720 frames) |") for line in lines
    )
    assert "* resnet18 (torch): max streams ratio direct48 / upscale224 12.00x" in lines
    assert BOUNDED_TEXT in md


def test_every_verdict_shows_its_frames_and_loadgens_own_verdict_with_early_stopping() -> None:
    run = server_probe(1, 10.0)  # 60 frames, VALID under the bounded rules
    judged = dataclasses.replace(
        run,
        loadgen_valid=False,
        early_stopping_met=False,
        early_stopping="needs 459 queries",
    )
    assert verdict_text(judged) == (
        "VALID (60 frames; LoadGen: INVALID, early stopping: needs 459 queries)"
    )
    met = dataclasses.replace(run, loadgen_valid=True, early_stopping_met=True)
    assert verdict_text(met) == "VALID (60 frames; LoadGen: VALID, early stopping met)"
    late = dataclasses.replace(server_probe(8, 50.0), loadgen_valid=False)
    assert verdict_text(late).startswith(
        "INVALID (480 frames; LoadGen: INVALID): 99.00 percentile latency"
    )
    dn = server_result("direct48", [(1, 10.0)], 1)
    report = stream_report([dataclasses.replace(dn, runs=[judged])])
    assert "VALID (60 frames; LoadGen: INVALID, early stopping: needs 459 queries)" in (
        stream_markdown(report)
    )


# -- lower bounds ------------------------------------------------------------------------------


def test_a_search_cut_short_or_at_the_ceiling_is_a_lower_bound_and_so_is_the_ratio() -> None:
    wide = dataclasses.replace(server_result("direct48", DN_SERVER, 12), search_resolution=4)
    report = stream_report([server_result("upscale224", UP_SERVER, 1), wide])
    by = {h.pipeline: h for h in headlines(report.stream)}  # type: ignore[arg-type]
    assert by["direct48"].lower_bound and not by["upscale224"].lower_bound
    md = stream_markdown(report)
    assert "| resnet18 | direct48 | torch | ≥12 | 30.0 | — |" in md
    assert "ratio direct48 / upscale224 ≥12.00x indicative (a lower bound" in md
    # the ceiling: every probe up to --max-streams valid
    exact = stream_report()
    assert "| resnet18 | direct48 | torch | 12 |" in stream_markdown(exact)
    at_top = dataclasses.replace(exact, config=exact.config | {"max_streams": 12})
    assert "| resnet18 | direct48 | torch | ≥12 |" in stream_markdown(at_top)
    # cut by --time-budget (the report's note), resolution 1 notwithstanding
    noted = dataclasses.replace(
        report.stream,  # type: ignore[type-var]
        results=[
            server_result("upscale224", UP_SERVER, 1),
            server_result("direct48", DN_SERVER, 12),
        ],
        notes=["resnet18/direct48: the server search was cut by --time-budget after 4 runs"],
    )
    assert {h.pipeline: h for h in headlines(noted)}["direct48"].lower_bound
    # upscale224 a lower bound: the ratio is not known, left out
    up_cut = dataclasses.replace(server_result("upscale224", UP_SERVER, 1), search_resolution=3)
    heads = headlines(
        stream_report([up_cut, server_result("direct48", DN_SERVER, 12)]).stream  # type: ignore[arg-type]
    )
    assert streams_ratio(heads, "resnet18", "torch") is None
    line = ratio_lines(stream_report([up_cut, server_result("direct48", DN_SERVER, 12)]).stream)[0]  # type: ignore[arg-type]
    assert "— (upscale224's max streams is a lower bound" in line

"""'Real-time ready' read from `stream` reports: holds when direct48 serves at least one stream
at the report's fps with server p99 within the deadline, does not hold when it serves none,
not measured (naming the command) without a stream report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from emobench import machine
from emobench import results as R
from emobench.readout.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_MEASURED,
    REALTIME_CLAIM,
    ClaimVerdict,
    evaluate_reports,
)
from emobench.render.readout import claim_cells
from tests.factories import make_report, with_env
from tests.render.test_stream_render import (
    DN_SERVER,
    ENV,
    UP_SERVER,
    server_result,
    single_result,
    stream_report,
)

REALTIME = REALTIME_CLAIM.text
COMMAND = "`emobench stream --backbone resnet18 --scenario server --scenario single-stream`"


def realtime(*reports: R.Report) -> list[ClaimVerdict]:
    loaded = [(Path(f"r{i}.json"), rep) for i, rep in enumerate(reports)]
    return [v for v in evaluate_reports(loaded).verdicts if v.key == REALTIME_CLAIM.key]


def one(*reports: R.Report) -> ClaimVerdict:
    rows = realtime(*reports)
    assert len(rows) == 1, rows
    return rows[0]


def test_holds_when_direct48_serves_a_stream_within_the_deadline() -> None:
    v = one(stream_report())
    assert v.verdict == HOLDS and v.backbone == "resnet18"
    assert v.machine_class == machine.class_id(ENV)
    assert v.claimed_text == ">= 1 stream at 30 fps" and v.threshold is None
    assert (v.measured, v.low, v.high) == (12.0, 12.0, 12.0)  # the max-streams ratio
    assert (
        "direct48 serves 12 streams at 30 fps with server p99 30.0 ms within the 33.3 ms "
        "deadline, VALID (720 frames)"
    ) in v.reason
    assert "upscale224 serves 1 stream (server p99 25.0 ms, VALID (60 frames))" in v.reason
    assert (
        "single-stream p90: direct48 3.0 ms (400 frames), upscale224 21.0 ms (400 frames)"
    ) in v.reason
    assert "Poisson arrivals, burstier than periodic cameras: a pessimistic estimate" in v.reason
    assert "max-streams ratio direct48 / upscale224: 12.00x" in v.reason
    assert "torch on cpu, LoadGen 6.0.17, bounded probes, not MLPerf-compliant" in v.reason
    assert "--mlperf" in v.settle and "no sampling interval" in v.interval
    assert claim_cells(v)[3:7] == [">= 1 stream at 30 fps", "—", "12.00x", HOLDS]


def test_does_not_hold_when_direct48_serves_no_stream() -> None:
    dn = server_result("direct48", [(1, 45.0)], 0)
    up = server_result("upscale224", [(1, 300.0)], 0)
    v = one(stream_report([up, dn]))
    assert v.verdict == FAILS and v.measured is None  # no ratio of 0 streams, never 0
    assert "direct48 serves no stream at 30 fps: server p99 45.0 ms" in v.reason
    assert (
        "33.3 ms deadline, INVALID (60 frames): 99.00 percentile latency (45000000 ns) > target "
        "latency"
    ) in v.reason
    assert "max-streams ratio direct48 / upscale224: none (direct48 serves no stream)" in v.reason
    assert "single-stream p90: direct48 not measured, upscale224 not measured" in v.reason
    assert "(add --scenario single-stream)" in v.reason


def test_upscale224_serving_none_leaves_the_ratio_out_but_the_verdict_holds() -> None:
    up = server_result("upscale224", [(1, 80.0)], 0)
    v = one(stream_report([up, server_result("direct48", DN_SERVER, 12)]))
    assert v.verdict == HOLDS and v.measured is None
    assert "none (upscale224 serves no stream)" in v.reason


def test_not_measured_without_a_stream_report_names_the_command() -> None:
    v = one(make_report(backbones=("resnet18",)))
    assert v.verdict == NOT_MEASURED and v.backbone == "resnet18"
    assert COMMAND in v.reason and "`emobench stream`" in v.reason
    nothing = one()
    assert nothing.verdict == NOT_MEASURED and "--backbone B " in nothing.reason


def test_a_stream_report_without_direct48_server_run_is_not_measured_in_its_class() -> None:
    singles = stream_report([single_result("upscale224", 21.0), single_result("direct48", 3.0)])
    v = one(singles)
    assert v.verdict == NOT_MEASURED and v.machine_class == machine.class_id(ENV)
    assert "no server run of direct48" in v.reason and COMMAND in v.reason
    failed = server_result("direct48", [], None, error="the model raised: boom")
    v = one(stream_report([server_result("upscale224", UP_SERVER, 1), failed]))
    assert v.verdict == NOT_MEASURED
    assert "direct48's server run failed: the model raised: boom" in v.reason


def test_runs_of_one_class_pool_and_disagreeing_runs_are_inconclusive() -> None:
    later = "2026-11-26T00:00:00Z"
    again = stream_report(
        [server_result("upscale224", UP_SERVER, 1), server_result("direct48", DN_SERVER[:2], 8)],
        created=later,
    )
    v = one(stream_report(), again)
    assert v.verdict == HOLDS and v.measured == 10.0  # the median of 12x and 8x
    assert "direct48's max streams in each: 12, 8" in v.reason
    assert "the median of 2 searches' ratios" in v.interval
    none = stream_report(
        [server_result("upscale224", UP_SERVER, 1), server_result("direct48", [(1, 45.0)], 0)],
        created=later,
    )
    v = one(stream_report(), none)
    assert v.verdict == INCONCLUSIVE and "runs disagree" in v.settle


def test_another_stream_setting_in_the_class_is_named_not_pooled() -> None:
    at60 = stream_report(fps=60.0, created="2026-11-26T00:00:00Z")
    loaded = [(Path("a.json"), stream_report()), (Path("b.json"), at60)]
    result = evaluate_reports(loaded)
    rows = [v for v in result.verdicts if v.key == REALTIME_CLAIM.key]
    assert len(rows) == 1 and rows[0].claimed_text == ">= 1 stream at 30 fps"
    assert any(
        n.startswith("b.json: its 'real-time ready' reading (torch, 60 fps") for n in (result.notes)
    )


def test_an_mlperf_run_says_so_and_needs_no_settling() -> None:
    v = one(stream_report(mlperf=True))
    assert v.verdict == HOLDS and "MLPerf-style run" in v.reason and v.settle == ""


def test_one_row_per_machine_class_beside_a_compare_report_of_the_class() -> None:
    compare = with_env(make_report(backbones=("resnet18",)), **ENV)
    other = stream_report(env=ENV | {"cpu_isa": "avx2", "cpu_capability": "AVX2"})
    result = evaluate_reports(
        [(Path("c.json"), compare), (Path("s.json"), stream_report()), (Path("o.json"), other)]
    )
    rows = [v for v in result.verdicts if v.key == REALTIME_CLAIM.key]
    assert [v.machine_class for v in rows] == [
        machine.class_id(ENV),
        machine.class_id(other.environment),
    ]
    assert [c.id for c in result.classes] == [v.machine_class for v in rows]  # no split class
    inference = [v for v in result.verdicts if v.key == "inference"]
    assert inference[0].machine_class == machine.class_id(ENV)
    summary = next(s for s in result.summaries if s.claim == REALTIME)
    assert summary.text == "holds on 2 of 2 machine classes"


def test_a_stream_report_alone_gives_its_backbone_every_claims_row() -> None:
    result = evaluate_reports([(Path("s.json"), stream_report())])
    assert {v.backbone for v in result.verdicts} == {"resnet18", "—"}
    timing = [v for v in result.verdicts if v.key == "inference"]
    assert timing[0].verdict == NOT_MEASURED
    renamed = dataclasses.replace(stream_report(), config={})  # no resolved device recorded
    assert "torch on cpu" in one(renamed).reason  # read from the environment


def test_one_periodic_camera_served_where_poisson_arrivals_are_not_is_inconclusive() -> None:
    dn = server_result("direct48", [(1, 45.0)], 0)  # Poisson at 1 stream: p99 45 ms, INVALID
    up = server_result("upscale224", [(1, 300.0)], 0)
    v = one(stream_report([up, dn, single_result("direct48", 3.0)]))  # single p99 3.6 ms
    assert v.verdict == INCONCLUSIVE and v.measured is None
    assert (
        "one periodic camera is served (single-stream p99 3.6 ms), Poisson arrivals at 1 stream "
        "are not: rerun with longer probes or judge on single-stream"
    ) in v.reason
    assert v.settle == "rerun with longer probes or judge on single-stream"
    # single-stream p99 plus the 2 ms batch window past the 33.3 ms deadline: does not hold
    slow = one(stream_report([up, dn, single_result("direct48", 28.0)]))  # p99 33.6 ms
    assert slow.verdict == FAILS and "one periodic camera is served" not in slow.reason


def test_the_reason_shows_loadgens_own_verdict_and_early_stopping() -> None:
    dn = server_result("direct48", DN_SERVER, 12)
    runs = [
        dataclasses.replace(
            r, loadgen_valid=False, early_stopping_met=False, early_stopping="needs 459 queries"
        )
        for r in dn.runs
    ]
    v = one(
        stream_report(
            [server_result("upscale224", UP_SERVER, 1), dataclasses.replace(dn, runs=runs)]
        )
    )
    assert "VALID (720 frames; LoadGen: INVALID, early stopping: needs 459 queries)" in v.reason


def test_a_lower_bound_is_marked_and_its_ratio_is_indicative_or_left_out() -> None:
    cut = dataclasses.replace(server_result("direct48", DN_SERVER, 12), search_resolution=4)
    v = one(stream_report([server_result("upscale224", UP_SERVER, 1), cut]))
    assert v.verdict == HOLDS and v.measured is None  # a lower bound is no figure to state
    assert "direct48 serves ≥12 streams at 30 fps" in v.reason
    assert "ratio direct48 / upscale224: ≥12.00x, indicative (a lower bound)" in v.reason
    capped = stream_report()
    capped = dataclasses.replace(capped, config=capped.config | {"max_streams": 12})
    assert "direct48 serves ≥12 streams" in one(capped).reason
    up_cut = dataclasses.replace(server_result("upscale224", UP_SERVER, 1), search_resolution=2)
    v = one(stream_report([up_cut, server_result("direct48", DN_SERVER, 12)]))
    assert v.measured is None and "upscale224 serves ≥1 stream" in v.reason
    assert "none (upscale224's max streams is a lower bound: the ratio is not known)" in v.reason
    noted = stream_report()
    assert noted.stream is not None
    budget = "resnet18/direct48: the server search was cut by --time-budget after 4 runs"
    noted = dataclasses.replace(noted, stream=dataclasses.replace(noted.stream, notes=[budget]))
    assert "direct48 serves ≥12 streams" in one(noted).reason

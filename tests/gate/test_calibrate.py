"""A/A calibration: thresholds from run-to-run spread, and a check that uses them."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest

from emobench.gate import verdicts as B
from emobench.gate.calibrate import calibrate, calibrated_baseline
from tests.factories import TIGHT_DN, TIGHT_UP, drifting_runs, make_report


def _ratio_verdict(cur, base, rules=None) -> B.Verdict:
    return next(
        v
        for v in B.check(cur, base, rules)
        if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
    )


def _at(base, move: float):
    """A one-run report whose vgg16 latency ratio is the baseline runs' centre x (1 + move)."""
    stored = base.run_ratios["vgg16/latency_b1_median_ms"]
    centre = math.exp(statistics.fmean(math.log(r) for r in stored))
    scale = statistics.median(TIGHT_UP) / statistics.median(TIGHT_DN) / centre / (1 + move)
    return make_report(dn_latency=[s * scale for s in TIGHT_DN])


def test_calibrated_baseline_gates_at_its_own_threshold() -> None:
    base, _ = calibrated_baseline(drifting_runs())
    assert base.gate_alpha == 0.05  # the default: 5% false alarms for the whole gate
    threshold = base.thresholds["vgg16/latency_b1_median_ms"]
    assert 0.03 <= threshold < 0.5
    stored = base.run_ratios["vgg16/latency_b1_median_ms"]
    assert len(stored) == 5
    centre = math.exp(statistics.fmean(math.log(r) for r in stored))
    inside = _ratio_verdict(_at(base, -threshold * 0.95), base)  # direct48 a little slower
    assert inside.verdict == B.PASS and inside.threshold == pytest.approx(threshold)
    assert inside.baseline == pytest.approx(centre)
    assert inside.delta == pytest.approx(-threshold * 0.95)
    assert _ratio_verdict(_at(base, threshold * 0.95), base).verdict == B.PASS
    slower = _ratio_verdict(_at(base, -threshold * 1.05), base)  # beyond it: a regression
    assert slower.failed and "1 run beyond the spread of 5 baseline runs" in slower.note
    assert "advantage shrank" in slower.note
    faster = _ratio_verdict(_at(base, threshold * 1.05), base)  # the other way fails too
    assert faster.failed and "advantage grew" in faster.note


def test_a_checks_runs_count_as_one_and_damp_a_disturbed_run() -> None:
    """Three runs of a check: their geometric mean is compared, at the same threshold as one
    run (they share the machine's state); one disturbed run moves it by about a third."""
    base, _ = calibrated_baseline(drifting_runs())
    threshold = base.thresholds["vgg16/latency_b1_median_ms"]
    cur = _at(base, 0.0)
    centre = math.exp(
        statistics.fmean(map(math.log, base.run_ratios["vgg16/latency_b1_median_ms"]))
    )
    disturbed = centre * (1 + 2 * threshold)
    alone = _ratio_verdict(_at(base, 2 * threshold), base)
    assert alone.failed
    three = dataclasses.replace(
        cur, run_ratios={"vgg16/latency_b1_median_ms": [centre, centre, disturbed]}
    )
    damped = _ratio_verdict(three, base)
    assert damped.verdict == B.PASS and damped.threshold == pytest.approx(threshold)
    assert damped.current == pytest.approx((centre * centre * disturbed) ** (1 / 3))


def test_baseline_alpha_missing_or_invalid_falls_back_to_the_default() -> None:
    strict, _ = calibrated_baseline(drifting_runs(), alpha=0.01)
    default, _ = calibrated_baseline(drifting_runs())
    loose, _ = calibrated_baseline(drifting_runs(), alpha=0.2)
    cur = make_report()
    assert _ratio_verdict(cur, strict).threshold > _ratio_verdict(cur, default).threshold
    assert _ratio_verdict(cur, default).threshold > _ratio_verdict(cur, loose).threshold
    for alpha in (None, float("nan"), -1.0, 1.0):
        odd = dataclasses.replace(loose, gate_alpha=alpha)
        assert _ratio_verdict(cur, odd).threshold == pytest.approx(
            _ratio_verdict(cur, default).threshold
        )


def test_calibration_expands_reports_that_hold_several_runs() -> None:
    """`baseline save` / calibration over --repeat reports keeps every run, not one per file."""
    from emobench.gate.calibrate import run_ratios

    held = dataclasses.replace(
        make_report(), run_ratios={"vgg16/latency_b1_median_ms": [9.0, 10.0, 11.0]}
    )
    values = run_ratios([held, make_report()])
    assert values[("vgg16", "latency_b1_median_ms")][:3] == [9.0, 10.0, 11.0]
    assert len(values[("vgg16", "latency_b1_median_ms")]) == 4


def test_calibration_needs_three_runs() -> None:
    with pytest.raises(ValueError, match="at least 3 runs"):
        calibrate(drifting_runs()[:2])


def test_a_kind_rule_is_a_floor_under_calibrated_thresholds() -> None:
    base, _ = calibrated_baseline(drifting_runs())
    carried = base.thresholds["vgg16/latency_b1_median_ms"]
    cur = make_report(dn_latency=[s * 1.0 for s in TIGHT_DN])

    def tol(rules: dict[str, float]) -> float | None:
        v = next(
            v for v in B.check(cur, base, rules)
            if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
        )  # fmt: skip
        return v.threshold

    assert tol({}) == carried
    assert tol({"portable": carried + 0.2}) == pytest.approx(carried + 0.2)  # looser floor wins
    assert tol({"portable": 0.0}) == carried  # a tighter kind rule does not undercut it
    assert tol({"latency_b1_median_ms": 0.01}) == 0.01  # a key rule is exact

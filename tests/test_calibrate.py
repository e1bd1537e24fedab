"""A/A calibration: thresholds from run-to-run spread, and a check that uses them."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy.stats import norm, t

from emobench import baseline as B
from emobench.calibrate import MIN_THRESHOLD, calibrate, calibrated_baseline
from tests.factories import TIGHT_DN, TIGHT_UP, make_report

# five runs whose direct48 latency drifts run to run (the within-run samples stay tight)
DRIFT = (1.00, 1.04, 0.97, 1.02, 0.99)


def runs() -> list:
    return [make_report(dn_latency=[s * f for s in TIGHT_DN]) for f in DRIFT]


def test_threshold_is_students_t_times_the_run_to_run_noise() -> None:
    cal = {(c.backbone, c.key): c for c in calibrate(runs(), alpha=0.01)}
    c = cal[("vgg16", "latency_b1_median_ms")]
    ratios = [statistics.median(TIGHT_UP) / (statistics.median(TIGHT_DN) * f) for f in DRIFT]
    sd = statistics.stdev(math.log(r) for r in ratios)
    noise = sd * math.sqrt(1 + 1 / 5)
    assert c.runs == 5 and c.log_sd == pytest.approx(sd)
    assert c.threshold == pytest.approx(max(MIN_THRESHOLD, math.expm1(t.ppf(0.995, 4) * noise)))
    assert c.detectable == pytest.approx(math.expm1((t.ppf(0.995, 4) + norm.ppf(0.8)) * noise))
    assert c.spread == pytest.approx(max(ratios) / min(ratios) - 1)


def test_calibrated_baseline_gates_at_its_own_threshold() -> None:
    base, _ = calibrated_baseline(runs())
    threshold = base.thresholds["latency_b1_median_ms"]
    assert 0.03 <= threshold < 0.5
    assert len(base.run_ratios["vgg16/latency_b1_median_ms"]) == 5
    median_ratio = statistics.median(base.run_ratios["vgg16/latency_b1_median_ms"])

    def verdict(factor: float) -> B.Verdict:
        cur = make_report(dn_latency=[s * factor for s in TIGHT_DN])
        return next(
            v
            for v in B.check(cur, base)
            if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
        )

    inside = verdict(1.0 + threshold / 2)  # direct48 a little slower than the runs' median
    assert inside.verdict == B.PASS and inside.threshold == threshold
    assert inside.baseline == pytest.approx(median_ratio)
    outside = verdict(1.0 / (1.0 - min(0.9, threshold * 1.5)))  # beyond it: a regression
    assert outside.failed and "calibration runs" in outside.note


def test_calibration_needs_three_runs() -> None:
    with pytest.raises(ValueError, match="at least 3 runs"):
        calibrate(runs()[:2])

"""The gate's statistics: Student's t thresholds, Mann-Whitney, the bootstrap ratio interval."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy.stats import norm, t

from emobench.gate.calibrate import MIN_THRESHOLD, calibrate
from emobench.stats import gate as G
from tests.factories import DRIFT, TIGHT_DN, TIGHT_UP, drifting_runs


def test_mann_whitney() -> None:
    assert G.mann_whitney_p_greater([2.0] * 10, [1.0] * 10) < 1e-3
    assert G.mann_whitney_p_greater([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) > 0.4
    assert G.mann_whitney_p_greater([5.0], [1.0, 2.0]) == 1.0  # too few samples to tell


def test_ratio_interval_brackets_the_ratio_and_is_deterministic() -> None:
    lo, hi = G.ratio_interval(TIGHT_UP, TIGHT_DN)
    assert lo <= 100.1 / 10.005 <= hi and hi / lo < 1.05
    assert G.ratio_interval(TIGHT_UP, TIGHT_DN) == (lo, hi)


def test_threshold_is_students_t_times_the_run_to_run_noise() -> None:
    calibrations = calibrate(drifting_runs(), alpha=0.05)
    cal = {(c.backbone, c.key): c for c in calibrations}
    c = cal[("vgg16", "latency_b1_median_ms")]
    per_ratio = 0.05 / len(calibrations)  # Bonferroni: the whole gate's rate is 5%
    ratios = [statistics.median(TIGHT_UP) / (statistics.median(TIGHT_DN) * f) for f in DRIFT]
    sd = statistics.stdev(math.log(r) for r in ratios)
    noise = sd * math.sqrt(1 + 1 / 5)  # a check (its runs count as one) vs the mean of 5
    assert c.runs == 5 and c.log_sd == pytest.approx(sd)
    crit = t.ppf(1 - per_ratio / 2, 4)
    assert c.threshold == pytest.approx(max(MIN_THRESHOLD, math.expm1(crit * noise)))
    assert c.detectable == pytest.approx(math.expm1((crit + norm.ppf(0.8)) * noise))
    assert c.spread == pytest.approx(max(ratios) / min(ratios) - 1)
    assert c.mean_ratio == pytest.approx(math.exp(statistics.fmean(math.log(r) for r in ratios)))
    strict = {(x.backbone, x.key): x for x in calibrate(drifting_runs(), alpha=0.01)}
    assert strict[("vgg16", "latency_b1_median_ms")].threshold > c.threshold
